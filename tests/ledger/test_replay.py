"""`genline replay ledger` after a random workload: no difference, from the ledger's journal
and from its topic alike; after tampering with one account's row: exactly that account."""

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.bus.envelope import envelop
from services.common.contracts import (
    DeliveredImage,
    JobDelivered,
    JobSpec,
    JobSubmitted,
    OutputReported,
    ScoringFailed,
    VideoSpec,
)
from services.ledger import handlers
from services.ledger.app import LedgerApp
from services.ledger.records import CreditGrant
from services.ledger.replay import LedgerReplay, replay_ledger
from tests.ledger.conftest import isolated_ledger_settings

TENANTS = [f"r{i}" for i in range(5)]
OPERATIONS = ("grant", "submit", "submit", "submit", "deliver", "deliver", "fail", "report", "sweep", "policy")
# One small integer per operation keeps a 1,000-operation example within what hypothesis
# can draw; the operation, tenant, size and choices are read from its digits.
operation_code = st.integers(0, 2**16 - 1)


def decode(code: int) -> tuple[str, str, int, int]:
    return (OPERATIONS[code % len(OPERATIONS)], TENANTS[code // 10 % len(TENANTS)], code // 50 % 4 + 1,
            code // 7)


class Workload:
    """Drives the ledger's own handlers with a generated sequence of operations, applying
    consecutive events as batches of varying size, as the consumer does."""

    def __init__(self, ledger: LedgerApp) -> None:
        self.ledger, self.jobs, self.pending = ledger, [], []
        self.now = datetime.now(UTC)

    async def run(self, operations) -> None:
        for name, tenant, size, pick in operations:
            await getattr(self, name)(tenant, size, pick)
            if len(self.pending) >= pick % 17 + 1:
                await self.flush()
        await self.flush()

    async def flush(self) -> None:
        if self.pending:
            await self.ledger.runtime.consumer.apply_batch([envelop(e, "/test") for e in self.pending])
            self.pending = []

    async def grant(self, tenant, size, pick) -> None:
        await self.flush()
        expires = self.now + timedelta(days=pick % 4) if pick % 3 == 0 else None
        await self.ledger.grant(CreditGrant(tenant_id=tenant, amount=size * 25, source="admin", reason="workload", expires_at=expires,
                                            rollover_days=30 if pick % 5 == 0 and expires else None))

    async def submit(self, tenant, size, pick) -> None:
        # One job in five asks for clips, priced by the second (a clip of 1.5 to 4.5 seconds).
        video = VideoSpec(duration_s=1.5 + pick % 4, resolution=("480p", "720p")[pick % 2]) if pick % 5 == 1 else None
        job = JobSpec(job_id=uuid.uuid4(), tenant_id=tenant, template=("generic", "headshot", "product")[pick % 3],
                      tier=("stable", "fast", "low-cost")[pick % 3], prompt="p", images=size, candidates=size + 1,
                      seed=pick, submitted_at=self.now, use_retry_tokens=pick % 4 == 0, video=video)
        self.jobs.append(job)
        self.pending.append(JobSubmitted(job_id=job.job_id, tenant_id=tenant, job=job))

    def some_job(self, pick):
        return self.jobs[pick % len(self.jobs)] if self.jobs else None

    async def deliver(self, tenant, size, pick) -> None:
        if job := self.some_job(pick):
            image = DeliveredImage(n=1, key="k", url="u", expires_at=self.now, sha256="s", size_bytes=1,
                                   media_type="image/png")
            if job.video is not None:  # clips as long as asked, cut short, or longer
                image = image.model_copy(update={"media_type": "video/mp4", "duration_ms": pick % 6000, "fps": 24.0,
                                                 "codec": "h264"})
            images = [image.model_copy(update={"n": n}) for n in range(1, pick % (job.images + 1) + 1)]
            self.pending.append(JobDelivered(job_id=job.job_id, tenant_id=job.tenant_id, requested=job.images,
                                             images=images))

    async def fail(self, tenant, size, pick) -> None:
        if job := self.some_job(pick):
            self.pending.append(ScoringFailed(job_id=job.job_id, tenant_id=job.tenant_id, attempt=1,
                                              failure_code="no_candidate_passed", reason="r", scores=[]))

    async def report(self, tenant, size, pick) -> None:
        if job := self.some_job(pick):
            self.pending.append(OutputReported(job_id=job.job_id, tenant_id=job.tenant_id, n=size, reason="bad",
                                               reported_at=self.now + timedelta(days=pick % 9)))

    async def sweep(self, tenant, size, pick) -> None:
        await self.flush()
        await self.ledger.sweep_once(self.now + timedelta(days=pick % 5, hours=size))

    async def policy(self, tenant, size, pick) -> None:
        async with self.ledger.runtime.pool.connection() as conn:
            await conn.execute("UPDATE accounts SET report_policy = %s WHERE tenant_id = %s",
                               [("refund", "retry_token")[pick % 2], tenant])


async def run_workload(ledger_settings, operations) -> None:
    ledger = LedgerApp(ledger_settings)
    ledger.runtime.consumer.on_batch(handlers.CONSUMES.handled, ledger.ledger.apply_events)
    await ledger.runtime.start()  # relays the outbox to the isolated ledger topic
    try:
        await Workload(ledger).run(operations)
    finally:
        await ledger.runtime.stop()


def replay(ledger_settings, source: str = "journal") -> tuple[int, list[str]]:
    lines: list[str] = []
    return replay_ledger(ledger_settings, LedgerReplay(ledger_settings.schema_name, source),
                         out=lines.append), lines


def tamper(ledger_settings, tenant: str) -> None:
    with psycopg.connect(ledger_settings.database_url.get_secret_value()) as conn:
        conn.execute(f'UPDATE "{ledger_settings.schema_name}".accounts SET posted = posted + 1 WHERE tenant_id = %s',
                     [tenant])


@settings(max_examples=1, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(codes=st.lists(operation_code, min_size=1000, max_size=1100))
def test_replay_matches_after_a_random_workload_and_finds_exactly_the_tampered_account(endpoints, codes):
    ledger_settings = isolated_ledger_settings(endpoints)
    operations = [("grant", t, 4, 1) for t in TENANTS] + [decode(c) for c in codes]
    asyncio.run(run_workload(ledger_settings, operations))

    code, lines = replay(ledger_settings)
    assert code == 0, lines
    assert lines[-1] == "no differences"
    # The topic, read from its beginning, holds the same events and gives the same answer.
    code, from_topic = replay(ledger_settings, "topics")
    assert code == 0, from_topic
    assert from_topic[0].split(" from ")[0] == lines[0].split(" from ")[0]  # "replayed N events (N records)"

    victim = random.choice(TENANTS)
    tamper(ledger_settings, victim)
    code, lines = replay(ledger_settings)
    assert code == 1
    differing = [line for line in lines if line.startswith("DIFFERENCE")]
    assert differing == [f"DIFFERENCE tenant={victim} posted: live={int(differing[0].split('live=')[1].split()[0])}"
                         f" replayed={int(differing[0].split('replayed=')[1])}"]
    assert lines[-1] == "1 account(s) differ"
