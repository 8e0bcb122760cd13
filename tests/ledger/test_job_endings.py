"""How the ledger settles jobs that end without a full delivery (canceled, expired, failed),
as pure logic: once, whatever order the terminal events arrive in."""

import itertools
import uuid
from datetime import UTC, datetime

from services.common.contracts import (
    CandidateRef,
    CandidatesGenerated,
    DeliveredImage,
    JobCanceled,
    JobClosed,
    JobDelivered,
    JobSubmitted,
    ProviderCall,
    ReservationRejected,
    ReservationSettled,
)
from services.ledger.handlers import costs_by_provider, decide
from services.ledger.records import CreditGrant
from tests.ledger.test_book import NOW, new_book, spec

IMAGE = DeliveredImage(n=1, key="k", url="u", expires_at=NOW, sha256="s", size_bytes=1, media_type="image/png")


def terminal_events(job):
    common = {"job_id": job.job_id, "tenant_id": job.tenant_id}
    return [JobDelivered(**common, requested=job.images, images=[IMAGE]),
            JobCanceled(**common, reason="canceled by the client"),
            JobClosed(**common, final_state="expired", stuck_in="delivering", reason="stuck")]


def test_a_canceled_job_releases_its_whole_hold():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=100, source="admin", reason="r"), NOW)
    job = spec(images=3)
    book.reserve(job, NOW)
    settled = decide(book, JobCanceled(job_id=job.job_id, tenant_id="t", reason="client"), now=NOW)[0]
    assert isinstance(settled, ReservationSettled) and settled.outcome == "canceled"
    assert (settled.charged, settled.released) == (0, 30)
    assert book.accounts["t"].available == 100 and book.accounts["t"].pending == 0


def test_whichever_terminal_event_comes_first_settles_and_the_others_change_nothing():
    for order in itertools.permutations(range(3)):
        book = new_book()
        book.grant(CreditGrant(tenant_id="t", amount=100, source="admin", reason="r"), NOW)
        job = spec(images=2)
        book.reserve(job, NOW)
        events = terminal_events(job)
        settlements = [out for i in order for out in decide(book, events[i], now=NOW) if out]
        assert len(settlements) == 1
        charged = 10 if order[0] == 0 else 0  # delivered first: the one delivered image is charged
        assert settlements[0].charged == charged
        assert book.accounts["t"].posted == 100 - charged and book.accounts["t"].pending == 0


def test_a_job_canceled_before_its_reservation_is_never_reserved():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=100, source="admin", reason="r"), NOW)
    job = spec(images=2)
    assert decide(book, JobCanceled(job_id=job.job_id, tenant_id="t", reason="client"), now=NOW) == [None]
    rejected = decide(book, JobSubmitted(job_id=job.job_id, tenant_id="t", job=job), now=NOW)[0]
    assert isinstance(rejected, ReservationRejected) and rejected.reason_code == "job_closed"
    assert book.accounts["t"].pending == 0 and book.new_closed == [(job.job_id, "t", "canceled")]


def test_each_provider_called_in_an_attempt_is_booked_its_own_cost():
    ref = CandidateRef(index=0, key="k", media_type="image/png", size_bytes=1, sha256="s", width=8, height=8,
                       provider="cheap", cost_micro_usd=300)
    calls = [ProviderCall(provider="flaky", outcome="error", cost_micro_usd=200),
             ProviderCall(provider="cheap", outcome="ok", candidates=1, cost_micro_usd=300)]
    event = CandidatesGenerated(job_id=uuid.uuid4(), tenant_id="t", attempt=1, images=1,
                                started_at=datetime.now(UTC), candidates=[ref], cost_micro_usd=500, calls=calls)
    assert costs_by_provider(event) == {"flaky": 200, "cheap": 300}
    book = new_book()
    decide(book, event, now=NOW)
    assert sorted((c.provider, c.cost_micro_usd) for c in book.new_costs) == [("cheap", 300), ("flaky", 200)]
