"""Events written for the previous release's consumers, checked against that release's own
contracts (its `contracts.py` at its commit, loaded beside this release's): what this release
writes for 0.1.0 its consumers read, what it writes whole they refuse (the check can fail);
a member 0.1.0 cannot carry is named before anything is written; a type it does not know is
not written; and this release's readers keep and pass on what a later one adds."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from services.common.bus.envelope import envelop, from_kafka, to_kafka
from services.common.bus.writing import EventWriter, UnwritableEvent
from services.common.contracts import (
    EVENT_TYPES,
    CandidateRef,
    CandidatesGenerated,
    CandidatesScored,
    CreditsReserved,
    JobEvent,
    JobSpec,
    JobSubmitted,
    ProviderCall,
    SealedText,
)
from services.common.event_shapes import changes, current_shapes, project, widened
from services.common.releases import PREVIOUS, RELEASE, record_of
from tests.releases.records import source_of

NOW = datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture(scope="module")
def previous_contracts(tmp_path_factory):
    """The previous release's contracts module, from its source at its commit."""
    import importlib.util
    import sys

    root = source_of(PREVIOUS, tmp_path_factory.mktemp("previous"))
    spec = importlib.util.spec_from_file_location("previous_contracts", root / "services/common/contracts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def spec(**options) -> JobSpec:
    job_id = uuid.uuid4()
    return JobSpec(job_id=job_id, tenant_id="t-writing", template="generic", prompt=SealedText(ciphertext="c2VhbGVk"),
                   images=2, candidates=4, seed=7, submitted_at=NOW, **options)


def events_this_release_widened() -> list:
    job = spec()
    call = ProviderCall(provider="local", model="painter", outcome="ok", candidates=2, cost_micro_usd=4_000,
                        refused_outputs=1, detail="one blank output")
    return [JobSubmitted(job_id=job.job_id, tenant_id=job.tenant_id, job=job),
            CreditsReserved(job_id=job.job_id, tenant_id=job.tenant_id, job=job, transfer_id=uuid.uuid4(), amount=20,
                            unit_price=10),
            generated(job, calls=[call]),
            CandidatesScored(job_id=job.job_id, tenant_id=job.tenant_id, attempt=1, images=2, scores=[], selected=[],
                             output_format="webp")]


def generated(job: JobSpec, calls: list[ProviderCall] = ()) -> CandidatesGenerated:
    candidate = CandidateRef(index=0, key=f"t-writing/2026/11/{job.job_id}/0.png", media_type="image/png",
                             size_bytes=1_000, sha256="0" * 64, width=64, height=64, provider="local",
                             cost_micro_usd=2_000)  # a model 0.1.0 reads whole: kept as it is, unwalked
    return CandidatesGenerated(job_id=job.job_id, tenant_id=job.tenant_id, job=job, attempt=1, images=job.images,
                               started_at=NOW, candidates=[candidate], cost_micro_usd=4_000, calls=list(calls))


def test_the_previous_release_reads_every_event_written_for_it_and_refuses_the_same_written_whole(previous_contracts):
    writer, whole = EventWriter(namespace="genline", readers=PREVIOUS.version), EventWriter(namespace="genline")
    for event in events_this_release_widened():
        for_previous = json.loads(writer.body(event))
        read = previous_contracts.parse_event(event.event_type, for_previous)
        assert read.job_id == event.job_id
        assert [c.model_dump(mode="json") for c in getattr(read, "candidates", [])] == \
               [c.model_dump(mode="json") for c in getattr(event, "candidates", [])]  # as 0.1.0 reads them
        with pytest.raises(ValueError, match="Extra inputs are not permitted"):
            previous_contracts.parse_event(event.event_type, json.loads(whole.body(event)))


def test_a_model_kept_for_the_previous_release_is_read_by_it_and_refused_when_kept_whole(previous_contracts):
    """A value of an event's model kept in a table both releases read (the router's job specs)."""
    job = spec()
    kept = EventWriter(namespace="genline", readers=PREVIOUS.version).shared(job)
    assert previous_contracts.JobSpec.model_validate_json(kept).job_id == job.job_id
    assert JobSpec.model_validate_json(kept) == job
    whole = EventWriter(namespace="genline").shared(job)
    with pytest.raises(ValueError, match="output_format"):
        previous_contracts.JobSpec.model_validate_json(whole)
    assert JobSpec.model_validate_json(whole) == job


def test_the_types_this_release_widened_are_the_ones_carrying_its_new_members():
    before = record_of(PREVIOUS.version)["events"]
    assert {"genline.job.submitted.v2", "genline.credits.reserved.v2", "genline.candidates.generated.v3",
            "genline.candidates.scored.v4"} <= widened(before, current_shapes())
    assert "genline.job.canceled.v1" not in widened(before, current_shapes())
    assert {"JobSpec.output_format added", "CandidatesScored.output_format added",
            "ProviderCall.refused_outputs added"} <= set(changes(before, current_shapes()))


def test_a_member_the_previous_release_does_not_know_is_left_out_at_any_depth_and_named():
    job = spec(output_format="jpeg")
    reserved = CreditsReserved(job_id=job.job_id, tenant_id=job.tenant_id, job=job, transfer_id=uuid.uuid4(),
                               amount=20, unit_price=10)
    payload = reserved.model_dump(mode="json")
    projected, left_out = project(payload, reserved.event_type, shapes=record_of(PREVIOUS.version)["events"])
    assert left_out == ["job.output_format"]
    assert "output_format" not in projected["job"] and projected["job"]["prompt"] == payload["job"]["prompt"]
    assert {k: v for k, v in projected.items() if k != "job"} == {k: v for k, v in payload.items() if k != "job"}


def test_what_a_job_sets_that_the_previous_release_cannot_carry_is_named_before_anything_is_written():
    writer = EventWriter(namespace="genline", readers=PREVIOUS.version)
    plain, jpeg = spec(), spec(output_format="jpeg")
    assert writer.withheld(JobSubmitted(job_id=plain.job_id, tenant_id=plain.tenant_id, job=plain)) == []
    assert writer.withheld(JobSubmitted(job_id=jpeg.job_id, tenant_id=jpeg.tenant_id, job=jpeg)) == ["job.output_format"]
    assert EventWriter(namespace="genline").withheld(JobSubmitted(job_id=jpeg.job_id, tenant_id="t", job=jpeg)) == []


def test_a_type_the_previous_release_does_not_know_is_not_written_for_it():
    class JobPaused(JobEvent):
        event_type = "genline.job.paused.v1"
        publisher = "ingest"

    try:
        paused = JobPaused(job_id=uuid.uuid4(), tenant_id="t")
        writer = EventWriter(namespace="genline", readers=PREVIOUS.version)
        assert not writer.writes(JobPaused) and writer.writes(JobSubmitted)
        with pytest.raises(UnwritableEvent, match="genline.job.paused.v1 is not written"):
            writer.body(paused)
        assert json.loads(EventWriter(namespace="genline").body(paused))["tenant_id"] == "t"
    finally:
        del EVENT_TYPES[JobPaused.event_type]


def test_every_event_says_the_release_that_wrote_it_and_one_from_before_releases_said_reads_as_none():
    envelope = envelop(JobSubmitted(job_id=(job := spec()).job_id, tenant_id=job.tenant_id, job=job), "/genline/test")
    record = to_kafka(envelope)
    assert record.headers["ce_producerversion"] == RELEASE.encode()
    assert from_kafka(record).producer_version == RELEASE
    record.headers.pop("ce_producerversion")
    assert from_kafka(record).producer_version is None


def test_members_a_later_release_adds_are_kept_and_passed_on_by_this_ones_readers():
    job = spec()
    reserved = CreditsReserved(job_id=job.job_id, tenant_id=job.tenant_id, job=job, transfer_id=uuid.uuid4(),
                               amount=20, unit_price=10).model_dump(mode="json")
    reserved["job"]["lighting"] = {"key": "rembrandt"}  # what a later release might add
    reserved["hold_reason"] = "plan"
    read = CreditsReserved.model_validate(reserved)
    passed_on = generated(read.job)
    assert json.loads(passed_on.model_dump_json())["job"]["lighting"] == {"key": "rembrandt"}
    assert json.loads(read.model_dump_json())["hold_reason"] == "plan"
