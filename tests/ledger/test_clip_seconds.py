"""Clips priced by the second: a video job's hold covers its clips at the seconds asked, its
charge counts each delivered clip's seconds (rounded up, at most those asked), on the pure
book and through the ledger's handlers on the real PostgreSQL."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.common.bus.envelope import envelop
from services.common.contracts import (
    CreditsReserved,
    DeliveredImage,
    JobDelivered,
    JobSpec,
    JobSubmitted,
    ReservationRejected,
    ReservationSettled,
    VideoSpec,
)
from services.ledger.domain import Book
from services.ledger.pricebook import load_price_book
from services.ledger.pricing import billed_clip_seconds
from services.ledger.records import CreditGrant, DeliveryRecord
from tests.ledger.test_reservations import account, grant, ledger, published  # noqa: F401 - the fixture

# After the price book's version that prices clips took effect.
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
STABLE_720P, FAST_480P = 10, 5  # credits per second (pricebook.yaml, version 2026-11-26)


def video_job(tenant="t", clips=2, seconds=4.0, resolution="720p", tier="stable", tokens=False,
              submitted_at=NOW) -> JobSpec:
    return JobSpec(job_id=uuid.uuid4(), tenant_id=tenant, template="text-to-video", tier=tier, prompt="p",
                   images=clips, candidates=clips + 1, seed=1, submitted_at=submitted_at, use_retry_tokens=tokens,
                   video=VideoSpec(duration_s=seconds, resolution=resolution))


def clip(n: int, duration_ms: int) -> DeliveredImage:
    return DeliveredImage(n=n, key=f"k{n}", url="u", expires_at=NOW, sha256="s", size_bytes=1, media_type="video/mp4",
                          frames=duration_ms * 24 // 1000 or 1, duration_ms=duration_ms, fps=24, codec="h264")


def new_book() -> Book:
    return Book(price_book=load_price_book(), credit_value_micro_usd=10_000, reservation_timeout=timedelta(days=3), report_window=timedelta(days=7))


def test_a_clip_is_billed_its_seconds_rounded_up_and_never_more_than_asked():
    assert [billed_clip_seconds(ms, 5) for ms in (0, 1, 999, 1000, 1001, 4200, 5000, 5001, 9000)] == \
        [0, 1, 1, 1, 2, 5, 5, 5, 5]


def test_the_hold_covers_every_clip_at_the_seconds_asked_and_its_resolution():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=1000, source="admin", reason="r"), NOW)
    reserved = book.reserve(video_job(clips=3, seconds=4.2), NOW)  # 5 seconds a clip, billed whole
    assert isinstance(reserved, CreditsReserved)
    assert (reserved.amount, reserved.unit_price, reserved.pricebook_version) == (3 * 5 * STABLE_720P, 50, "2026-11-27")
    assert reserved.max_provider_spend_micro_usd == 3 * 5 * 400_000
    fast = book.reserve(video_job(clips=1, seconds=2, resolution="480p", tier="fast"), NOW)
    assert isinstance(fast, CreditsReserved) and fast.amount == 2 * FAST_480P


def test_only_delivered_seconds_are_charged_and_a_short_clip_costs_less():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=1000, source="admin", reason="r"), NOW)
    job = video_job(clips=3, seconds=4)  # holds 3 × 4 × 10 = 120
    book.reserve(job, NOW)
    settled = book.settle(job.job_id, DeliveryRecord(2, [4000, 2300]), now=NOW)  # one full clip, one cut at 2.3 s
    assert isinstance(settled, ReservationSettled)
    assert (settled.charged, settled.released, settled.delivered_seconds) == ((4 + 3) * STABLE_720P, 50, 7)
    assert book.accounts["t"].posted == 1000 - 70 and book.accounts["t"].pending == 0


def test_a_clip_longer_than_asked_costs_the_seconds_asked():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=1000, source="admin", reason="r"), NOW)
    job = video_job(clips=1, seconds=3)
    book.reserve(job, NOW)
    settled = book.settle(job.job_id, DeliveryRecord(1, [6100]), now=NOW)
    assert (settled.charged, settled.released, settled.delivered_seconds) == (30, 0, 3)


def test_a_retry_token_pays_for_a_whole_clip():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=1000, source="admin", reason="r"), NOW)
    book.accounts["t"].retry_tokens = 1
    job = video_job(clips=2, seconds=5, tokens=True)
    reserved = book.reserve(job, NOW)
    assert reserved.amount == 50 and reserved.tokens_held == 1  # one clip of two paid by the token
    settled = book.settle(job.job_id, DeliveryRecord(2, [5000, 3000]), now=NOW)
    assert (settled.charged, settled.tokens_used, settled.delivered_seconds) == (30, 1, 3)


def test_a_video_job_before_the_book_priced_clips_is_rejected_with_the_reason():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=1000, source="admin", reason="r"), NOW)
    rejected = book.reserve(video_job(submitted_at=datetime(2026, 11, 20, tzinfo=UTC)), NOW)
    assert isinstance(rejected, ReservationRejected) and rejected.reason_code == "unknown_tier"
    assert "per second" in rejected.reason


def test_an_image_job_is_priced_per_image_as_before():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=100, source="admin", reason="r"), NOW)
    job = JobSpec(job_id=uuid.uuid4(), tenant_id="t", template="generic", prompt="p", images=2, candidates=3, seed=1,
                  submitted_at=NOW)
    assert book.reserve(job, NOW).amount == 20
    assert book.settle(job.job_id, DeliveryRecord(1), now=NOW).charged == 10


def submitted_video(tenant: str, clips: int, seconds: float) -> JobSubmitted:
    job = video_job(tenant, clips, seconds, submitted_at=datetime.now(UTC))
    return JobSubmitted(job_id=job.job_id, tenant_id=tenant, job=job)


async def transfer_row(app, job_id) -> dict:
    async with app.runtime.pool.connection() as conn:
        return await (await conn.execute("SELECT amount, unit_price, second_price, clip_seconds, charged,"
                                         " delivered, delivered_seconds, state FROM transfers WHERE job_id = %s",
                                         [job_id])).fetchone()


async def test_a_partly_delivered_video_job_is_charged_its_delivered_seconds_once(ledger):  # noqa: F811
    await grant(ledger, "v1", 500)
    job = submitted_video("v1", clips=3, seconds=4)  # holds 120
    await ledger.runtime.consumer.apply(envelop(job, "/test"))
    assert await account(ledger, "v1") == {"posted": 500, "pending": 120, "available": 380}
    delivery = JobDelivered(job_id=job.job_id, tenant_id="v1", requested=3, images=[clip(1, 4000), clip(2, 1500)])
    await ledger.runtime.consumer.apply(envelop(delivery, "/test"))
    await ledger.runtime.consumer.apply(envelop(delivery, "/test"))  # the same fact under another event id
    settled = await published(ledger, ReservationSettled.event_type)
    assert len(settled) == 1
    assert (settled[0]["charged"], settled[0]["released"], settled[0]["delivered_seconds"]) == (60, 60, 6)
    assert await account(ledger, "v1") == {"posted": 440, "pending": 0, "available": 440}
    assert await transfer_row(ledger, job.job_id) == {
        "amount": 120, "unit_price": 40, "second_price": 10, "clip_seconds": 4, "charged": 60, "delivered": 2,
        "delivered_seconds": 6, "state": "posted"}


async def test_the_database_refuses_a_clip_price_without_its_seconds(ledger):  # noqa: F811
    await grant(ledger, "v2", 500)
    job = submitted_video("v2", clips=1, seconds=2)
    await ledger.runtime.consumer.apply(envelop(job, "/test"))
    async with ledger.runtime.pool.connection() as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="transfers_clip_priced_whole"):
            await conn.execute("UPDATE transfers SET clip_seconds = NULL WHERE job_id = %s", [job.job_id])
    reserved = await published(ledger, CreditsReserved.event_type)
    assert json.dumps(reserved[0]["job"]["video"]["duration_s"]) == "2.0"
