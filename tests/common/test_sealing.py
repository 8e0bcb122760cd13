"""Prompts sealed with their job's data key: they open with it, read as erased without it, and
a sealed value moved to another job or field does not open. Old events' clear prompts read
through the same contracts."""

import uuid

import pytest

from services.common.contracts import JobFinished, JobSubmitted, SealedText, parse_event
from services.common.sealing import ERASED, BrokenSeal, JobField, new_data_key, open_sealed, seal

JOB = uuid.uuid4()


def test_a_sealed_prompt_opens_with_its_key_and_shows_nothing_without_it():
    key = new_data_key()
    sealed = seal(key, JobField(JOB, "prompt"), text="a lighthouse at dusk")
    assert "lighthouse" not in sealed.model_dump_json() and sealed.clear is None
    assert open_sealed(key, JobField(JOB, "prompt"), sealed=sealed) == "a lighthouse at dusk"
    assert open_sealed(None, JobField(JOB, "prompt"), sealed=sealed) == ERASED  # the key destroyed: erased, not an error
    assert seal(key, JobField(JOB, "prompt"), text="a lighthouse at dusk") != sealed  # a fresh nonce each time


def test_a_sealed_value_opens_only_for_its_own_job_and_field():
    key = new_data_key()
    sealed = seal(key, JobField(JOB, "prompt"), text="a red bicycle")
    with pytest.raises(BrokenSeal):
        open_sealed(key, JobField(uuid.uuid4(), "prompt"), sealed=sealed)
    with pytest.raises(BrokenSeal):
        open_sealed(key, JobField(JOB, "negative_prompt"), sealed=sealed)
    with pytest.raises(BrokenSeal):
        open_sealed(new_data_key(), JobField(JOB, "prompt"), sealed=sealed)


SPEC = {"job_id": str(JOB), "tenant_id": "t", "template": "generic", "prompt": "an old clear prompt", "images": 1,
        "candidates": 2, "seed": 1, "submitted_at": "2026-11-01T10:00:00Z"}


def test_events_from_before_sealing_read_with_their_clear_prompt_and_blanked_ones_as_erased():
    submitted = parse_event("genline.job.submitted.v1", {"job_id": str(JOB), "tenant_id": "t", "job": SPEC})
    assert isinstance(submitted, JobSubmitted) and submitted.event_type == "genline.job.submitted.v2"
    assert open_sealed(None, JobField(JOB, "prompt"), sealed=submitted.job.prompt) == "an old clear prompt"
    finished = parse_event("genline.job.finished.v1", {"job_id": str(JOB), "tenant_id": "t", "state": "succeeded",
                                                       "view": {"id": str(JOB), "prompt": ""}})
    assert isinstance(finished, JobFinished) and finished.receipt_sha256 is None
    assert open_sealed(None, JobField(JOB, "prompt"), sealed=SealedText.read(finished.view["prompt"])) == ERASED


def test_a_subjects_photo_opens_only_with_its_key_for_its_own_subject_and_field():
    from services.common.sealing import SubjectField, open_bytes, open_subject_text, seal_bytes, seal_subject_text

    key, subject = new_data_key(), uuid.uuid4()
    photo = b"\x89PNG not really, but bytes"
    sealed = seal_bytes(key, SubjectField(subject, "photo/abc"), data=photo)
    assert photo not in sealed
    assert open_bytes(key, SubjectField(subject, "photo/abc"), sealed=sealed) == photo
    for field in (SubjectField(uuid.uuid4(), "photo/abc"), SubjectField(subject, "photo/def")):
        with pytest.raises(BrokenSeal):
            open_bytes(key, field, sealed=sealed)
    with pytest.raises(BrokenSeal):
        open_bytes(new_data_key(), SubjectField(subject, "photo/abc"), sealed=sealed)
    centroid = seal_subject_text(key, SubjectField(subject, "centroid"), text="AAAA")
    assert open_subject_text(key, SubjectField(subject, "centroid"), sealed=centroid) == "AAAA"
    assert open_subject_text(None, SubjectField(subject, "centroid"), sealed=centroid) == ERASED
