"""A job's training line in every path: trained (charged once, with the job's images settled
apart), reused (a trained photo set holds nothing), by reference (nothing), a training that
failed or was stopped, whoever's doing it was (released: only weights trained are charged), a
job that ended without training (released), an identity reported twice (charged once); first as pure
logic, then through the ledger's own handlers on PostgreSQL, with `genline replay ledger`
agreeing from the journal and from the topic."""

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg

from services.common.bus.envelope import envelop
from services.common.contracts import (
    CreditsReserved,
    DeliveredImage,
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    IdentityUse,
    JobDelivered,
    JobSpec,
    JobSubmitted,
    ReservationRejected,
    ReservationSettled,
    SubjectPhoto,
    SubjectRef,
    TrainingSettled,
)
from services.ledger import handlers
from services.ledger.app import LedgerApp
from services.ledger.balances_replayed import replay_balances
from services.ledger.records import CreditGrant
from tests.ledger.conftest import isolated_ledger_settings
from tests.ledger.test_book import new_book
from tests.ledger.test_replay import replay

NOW = datetime.now(UTC)  # the price book prices training from 2026-11-26
TRAINING, UNIT = 300, 25  # the price book's training line, and a subject headshot (stable)
IMAGE = DeliveredImage(n=1, key="k", url="u", expires_at=NOW, sha256="s", size_bytes=1, media_type="image/png")


def subject(photo_set: str = "set-1", subject_id: uuid.UUID | None = None) -> SubjectRef:
    photo = SubjectPhoto(key="subjects/t/s/a", sha256="a", media_type="image/png", width=512, height=512)
    return SubjectRef(subject_id=subject_id or uuid.uuid4(), kind="person", name="Ada", photos=[photo],
                      photo_set_sha256=photo_set, trigger_word="glabcdef")


def order(of: SubjectRef, tenant: str = "t", identity: str = "auto", images: int = 2) -> JobSpec:
    return JobSpec(job_id=uuid.uuid4(), tenant_id=tenant, template="subject-headshots", prompt="p", images=images,
                   candidates=images * 4, seed=1, submitted_at=NOW, subject=of, identity=identity)


def planned(job: JobSpec, trains: bool, mode: str = "lora") -> IdentityPlanned:
    use = IdentityUse(subject_id=job.subject.subject_id, mode=mode, provider="local", model="local-trainer")
    return IdentityPlanned(job_id=job.job_id, tenant_id=job.tenant_id, use=use, trains=trains, planned_at=NOW)


def trained(job: JobSpec, identity: uuid.UUID) -> IdentityTrained:
    return IdentityTrained(job_id=job.job_id, tenant_id=job.tenant_id, subject_id=job.subject.subject_id,
                           identity_id=identity, photo_set_sha256=job.subject.photo_set_sha256, provider="local",
                           model="local-trainer", weights_key="identities/w", weights_sha256="f" * 64,
                           weights_size_bytes=4096, trigger_word="glabcdef", cost_micro_usd=2_000_000,
                           trained_at=NOW)


def failed(job: JobSpec, tenant_fault: bool) -> IdentityTrainingFailed:
    return IdentityTrainingFailed(job_id=job.job_id, tenant_id=job.tenant_id, subject_id=job.subject.subject_id,
                                  identity_id=uuid.uuid4(), failure_code="provider_error", reason="the trainer failed",
                                  tenant_fault=tenant_fault, failed_at=NOW)


def delivered(job: JobSpec, images: int) -> JobDelivered:
    return JobDelivered(job_id=job.job_id, tenant_id=job.tenant_id, requested=job.images,
                        images=[IMAGE.model_copy(update={"n": n}) for n in range(1, images + 1)])


def funded_book(credits: int = 1000):
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=credits, source="admin", reason="r"), NOW)
    return book


def decided(book, events):
    return [out for event in events for out in handlers.decide(book, event, now=NOW) if out]


def test_a_job_that_trains_holds_its_line_and_is_charged_for_it_once():
    book, job, identity = funded_book(), order(subject()), uuid.uuid4()
    [reserved] = decided(book, [JobSubmitted(job_id=job.job_id, tenant_id="t", job=job)])
    assert isinstance(reserved, CreditsReserved)
    assert (reserved.amount, reserved.training_credits) == (2 * UNIT, TRAINING)
    assert book.accounts["t"].pending == 2 * UNIT + TRAINING
    [settled] = decided(book, [planned(job, trains=True), trained(job, identity)])
    assert isinstance(settled, TrainingSettled) and (settled.charged, settled.identity_id) == (TRAINING, identity)
    assert decided(book, [trained(job, identity)]) == []  # the same report again: nothing more
    outs = decided(book, [delivered(job, 2)])
    assert [type(o) for o in outs] == [ReservationSettled]
    assert book.accounts["t"].posted == 1000 - TRAINING - 2 * UNIT and book.accounts["t"].pending == 0


def test_a_trained_photo_set_is_reused_and_a_reference_order_trains_nothing():
    book, of = funded_book(), subject()
    first = order(of)
    decided(book, [JobSubmitted(job_id=first.job_id, tenant_id="t", job=first), trained(first, uuid.uuid4())])
    again, by_reference = order(of), order(subject(), identity="reference")
    reservations = decided(book, [JobSubmitted(job_id=j.job_id, tenant_id="t", job=j) for j in (again, by_reference)])
    assert [r.training_credits for r in reservations] == [0, 0]
    # New photos make a new set: trained again.
    newer = order(of.model_copy(update={"photo_set_sha256": "set-2"}))
    [reserved] = decided(book, [JobSubmitted(job_id=newer.job_id, tenant_id="t", job=newer)])
    assert reserved.training_credits == TRAINING


def test_a_training_line_is_released_when_the_job_reuses_fails_through_no_fault_or_ends_without_training():
    book = funded_book(2000)
    jobs = [order(subject()) for _ in range(3)]
    decided(book, [JobSubmitted(job_id=j.job_id, tenant_id="t", job=j) for j in jobs])
    outs = decided(book, [planned(jobs[0], trains=False, mode="reference"), failed(jobs[1], tenant_fault=False),
                          delivered(jobs[2], 1)])
    settled = [o for o in outs if isinstance(o, TrainingSettled)]
    assert [(s.job_id, s.outcome, s.charged, s.released) for s in settled] == [
        (jobs[0].job_id, "released", 0, TRAINING), (jobs[1].job_id, "released", 0, TRAINING),
        (jobs[2].job_id, "released", 0, TRAINING)]
    assert "no fault of yours" in settled[1].reason
    # The third job's line settles before its images, so a reader sees it first.
    assert [type(o) for o in outs[-2:]] == [TrainingSettled, ReservationSettled]
    assert book.accounts["t"].posted == 2000 - UNIT


def test_a_training_that_made_no_weights_is_never_charged_even_one_its_tenant_stopped():
    """Charged only for weights copied and checked (IdentityTrained): a training its tenant
    stopped (the order canceled, the subject erased) releases its line as a failed one does."""
    book, job = funded_book(), order(subject())
    decided(book, [JobSubmitted(job_id=job.job_id, tenant_id="t", job=job)])
    [settled] = decided(book, [failed(job, tenant_fault=True)])
    assert (settled.outcome, settled.charged, settled.released) == ("released", 0, TRAINING)
    assert book.accounts["t"].posted == 1000 and book.accounts["t"].pending == 2 * UNIT


def test_an_identity_is_charged_once_whichever_jobs_report_it():
    book, of, identity = funded_book(2000), subject(), uuid.uuid4()
    one, two = order(of), order(of)
    decided(book, [JobSubmitted(job_id=j.job_id, tenant_id="t", job=j) for j in (one, two)])
    outs = decided(book, [trained(one, identity), trained(two, identity)])
    assert [(o.outcome, o.charged) for o in outs] == [("charged", TRAINING), ("released", 0)]


def test_a_job_whose_images_fit_but_not_its_training_is_refused_whole():
    book, job = funded_book(credits=TRAINING + UNIT), order(subject())
    [refused] = decided(book, [JobSubmitted(job_id=job.job_id, tenant_id="t", job=job)])
    assert isinstance(refused, ReservationRejected) and refused.reason_code == "insufficient_credits"
    assert refused.required == TRAINING + 2 * UNIT and "to train the subject's identity" in refused.reason
    assert book.accounts["t"].pending == 0 and not book.trainings.holds


def test_the_balances_replayed_from_the_events_match_the_book():
    book, identity = new_book(), uuid.uuid4()
    jobs = [order(subject()) for _ in range(3)]
    granted = book.grant(CreditGrant(tenant_id="t", amount=2000, source="admin", reason="r"), NOW)
    events = [granted, *decided(book, [JobSubmitted(job_id=j.job_id, tenant_id="t", job=j) for j in jobs]),
              *decided(book, [trained(jobs[0], identity), failed(jobs[1], False), delivered(jobs[2], 1),
                              delivered(jobs[0], 2), delivered(jobs[1], 0)])]
    replayed = replay_balances(events)["t"]
    account = book.accounts["t"]
    assert (replayed.posted, replayed.pending) == (account.posted, account.pending) == (2000 - TRAINING - 3 * UNIT, 0)


# ---- through the ledger's handlers, on PostgreSQL ---------------------------------------------


async def run_orders(ledger_settings) -> dict[str, uuid.UUID]:
    ledger = LedgerApp(ledger_settings)
    ledger.runtime.consumer.on_batch(handlers.CONSUMES.handled, ledger.ledger.apply_events)
    await ledger.runtime.start()
    try:
        await ledger.grant(CreditGrant(tenant_id="t", amount=2000, source="admin", reason="test"))
        of, identity = subject(), uuid.uuid4()
        trains, reuses, by_reference, fails = order(of), order(of), order(subject(), identity="reference"), order(subject())

        async def apply(*events):
            await ledger.runtime.consumer.apply_batch([envelop(e, "/test") for e in events])

        await apply(*(JobSubmitted(job_id=j.job_id, tenant_id="t", job=j) for j in (trains, by_reference, fails)))
        await apply(planned(trains, True), trained(trains, identity), failed(fails, tenant_fault=False))
        await apply(JobSubmitted(job_id=reuses.job_id, tenant_id="t", job=reuses))  # after the training: reused
        await apply(trained(trains, identity), *(delivered(j, 1) for j in (trains, reuses, by_reference, fails)))
        return {"trains": trains.job_id, "reuses": reuses.job_id, "fails": fails.job_id, "identity": identity}
    finally:
        await ledger.runtime.stop()


def test_every_path_on_the_database_and_the_replay_agrees(endpoints):
    ledger_settings = isolated_ledger_settings(endpoints)
    jobs = asyncio.run(run_orders(ledger_settings))
    schema = ledger_settings.schema_name
    with psycopg.connect(ledger_settings.database_url.get_secret_value()) as conn:
        holds = dict(conn.execute(f'SELECT job_id, state FROM "{schema}".training_holds').fetchall())
        posted, pending = conn.execute(f'SELECT posted, pending FROM "{schema}".accounts WHERE tenant_id = %s',
                                       ["t"]).fetchone()
        charged_once = conn.execute(f'SELECT count(*) FROM "{schema}".training_holds WHERE identity_id = %s',
                                    [jobs["identity"]]).fetchone()[0]
    assert holds == {jobs["trains"]: "posted", jobs["fails"]: "voided"}  # reused and by reference held none
    assert charged_once == 1
    assert (posted, pending) == (2000 - TRAINING - 4 * UNIT, 0)
    code, lines = replay(ledger_settings)
    assert code == 0 and lines[-1] == "no differences", lines
    code, lines = replay(ledger_settings, "topics")
    assert code == 0, lines
