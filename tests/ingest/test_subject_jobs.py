"""A job of a subject in the read model and its receipt, as pure logic: the subject and its
styles from the submission, how the router carried its identity, the training line held and
settled (a final state waits for it), the log telling each; the receipt names the subject and
its identity, never a photo, and a job without a subject's receipt reads as before."""

import uuid
from datetime import UTC, datetime, timedelta

from services.common.contracts import (
    CreditsReserved,
    IdentityPlanned,
    IdentityTrained,
    IdentityUse,
    ReservationSettled,
    StyleSpec,
    SubjectPhoto,
    SubjectRef,
    TrainingSettled,
)
from services.ingest.jobs.domain import apply_event, submitted_view
from services.ingest.jobs.job_log import entries_for
from services.ingest.jobs.view import Change
from services.ingest.receipts.document import ReceiptStamp, receipt_body
from tests.ingest.test_read_model import EVENTS, JOB, SPEC, T0

SUBJECT = SubjectRef(subject_id=uuid.uuid4(), kind="person", name="Ada", trigger_word="glabcdef",
                     photos=[SubjectPhoto(key="subjects/t/s/a", sha256="a" * 64, media_type="image/jpeg", width=384,
                                          height=384)], photo_set_sha256="b" * 64)
OF_SUBJECT = SPEC.model_copy(update={"template": "subject-headshots", "subject": SUBJECT, "identity": "lora",
                                     "styles": [StyleSpec(name="corporate"), StyleSpec(name="casual")]})
IDENTITY = uuid.uuid4()


def identity_events():
    use = IdentityUse(subject_id=SUBJECT.subject_id, mode="lora", provider="local", model="local-trainer")
    return [IdentityPlanned(job_id=JOB, tenant_id="t", use=use, trains=True, planned_at=T0),
            IdentityTrained(job_id=JOB, tenant_id="t", subject_id=SUBJECT.subject_id, identity_id=IDENTITY,
                            photo_set_sha256=SUBJECT.photo_set_sha256, provider="local", model="local-trainer",
                            weights_key="identities/w", weights_sha256="c" * 64, weights_size_bytes=10,
                            trigger_word="glabcdef", cost_micro_usd=1, trained_at=T0)]


def reserved(training: int) -> CreditsReserved:
    return CreditsReserved(job_id=JOB, tenant_id="t", job=OF_SUBJECT, transfer_id=uuid.uuid4(), amount=10,
                           unit_price=10, training_credits=training, pricebook_version="2026-11-26")


def settled_training() -> TrainingSettled:
    return TrainingSettled(job_id=JOB, tenant_id="t", subject_id=SUBJECT.subject_id, identity_id=IDENTITY, held=300,
                           charged=300, released=0, outcome="charged", reason="identity trained")


def applied(view, events):
    for i, event in enumerate(events):
        view = apply_event(view, event, at=T0 + timedelta(seconds=i + 1))
    return view


def test_the_view_shows_the_subject_its_styles_and_the_identity_the_router_trained():
    view = submitted_view(OF_SUBJECT)
    assert view.subject.id == SUBJECT.subject_id and view.subject.identity_asked == "lora"
    assert view.styles == ["corporate", "casual"]
    view = applied(view, [reserved(300), *identity_events()])
    assert view.subject.training == "trained"
    assert (view.subject.identity.mode, view.subject.identity.weights_sha256) == ("lora", "c" * 64)
    assert view.billing.training.state == "reserved" and view.billing.training.reserved == 300


def test_a_final_state_waits_for_the_training_line_and_the_receipt_names_the_identity_never_a_photo():
    flow = [reserved(300), *identity_events(), *EVENTS[1:4],
            ReservationSettled(job_id=JOB, tenant_id="t", transfer_id=uuid.uuid4(), reserved=10, charged=10,
                               released=0, delivered_images=1)]
    view = applied(submitted_view(OF_SUBJECT), flow)
    assert view.state == "delivering" and view.reached == "succeeded"  # the training line is not settled yet
    view = apply_event(view, settled_training(), at=T0 + timedelta(minutes=1))
    assert view.state == "succeeded" and view.billing.training.charged == 300
    body = receipt_body(view, ReceiptStamp(sequence=1, previous_sha256=None, kid="kid", issued_at=datetime.now(UTC)))
    assert body["subject"] == {"id": str(SUBJECT.subject_id), "kind": "person", "name": "Ada",
                               "photo_set_sha256": "b" * 64,
                               "identity": {"mode": "lora", "identity_id": str(IDENTITY), "provider": "local",
                                            "model": "local-trainer", "weights_sha256": "c" * 64}}
    assert body["credits"]["training"] == {"reserved": 300, "charged": 300, "released": 0}
    assert "a" * 64 not in str(body) and "subjects/" not in str(body)  # neither a photo's hash nor its key


def test_the_log_tells_the_identity_and_the_training_line():
    view = applied(submitted_view(OF_SUBJECT), [reserved(300)])
    told = []
    for event in [*identity_events(), settled_training()]:
        after = apply_event(view, event, at=T0)
        told += [entry.type for entry in entries_for(Change(before=view, after=after, event=event, at=T0))]
        view = after
    assert told == ["identity.planned", "identity.trained", "billing.training_settled"]


def test_a_job_without_a_subject_has_a_receipt_as_before():
    view = applied(submitted_view(SPEC), [*EVENTS])
    body = receipt_body(view, ReceiptStamp(sequence=1, previous_sha256=None, kid="kid", issued_at=datetime.now(UTC)))
    assert "subject" not in body and "training" not in body["credits"]
    assert view.subject is None and view.styles is None
