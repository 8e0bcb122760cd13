"""The outbox, inbox and DLQ against the real broker and PostgreSQL."""

import asyncio
import base64
import uuid
from typing import ClassVar

import psycopg
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.bus.envelope import envelop, from_kafka
from services.common.bus.journal import BUS_FENCE, outbox_lock, relay_lock
from services.common.bus.outbox import RELAY_BATCH, UNPUBLISHED_ROWS, outbox_channel
from services.common.bus.replay import read_topic_to_end
from services.common.contracts import EVENT_TYPES, TOPICS, JobEvent, JobSubmitted, dead_letter_topic
from services.common.data_keys import DataKeys
from services.common.db import COMMON_MIGRATIONS, migrate
from services.common.runtime import ServiceRuntime
from services.common.settings import SealedContentSettings
from tests.conftest import settings_for
from tests.kafka import read_topic, submitted
from tests.polling import eventually
from tests.router.stubs import serve


@pytest.fixture
async def runtime(endpoints):
    rt = ServiceRuntime(f"bus_{uuid.uuid4().hex[:8]}", settings_for(endpoints), migrations_package=None)
    await rt.start()
    async with rt.pool.connection() as conn:
        await conn.execute("CREATE TABLE effects (job_id uuid, n int)")
    yield rt
    await rt.stop()


async def test_outbox_relays_cloudevents_in_binary_mode(runtime, endpoints):
    event = submitted()
    async with runtime.pool.connection() as conn, conn.transaction():
        envelope = await runtime.emit(conn, event)
    runtime.relay.notify()

    def is_mine(record) -> bool:
        return dict(record.headers).get("ce_id") == envelope.id.encode()

    await read_topic(endpoints.kafka_bootstrap, TOPICS["ingest"], want=1, timeout_s=60, keep=is_mine)
    # Then the whole topic as it is once the event is there: a second copy of it would be in it too.
    mine = [r for r in await read_topic_to_end(endpoints.kafka_bootstrap, TOPICS["ingest"]) if is_mine(r)]
    assert len(mine) == 1
    headers = dict(mine[0].headers)
    assert headers["ce_type"] == JobSubmitted.event_type.encode()
    assert headers["ce_subject"] == str(event.job_id).encode()
    assert headers["ce_tenantid"] == b"t-bus"
    assert headers["ce_specversion"] == b"1.0"
    assert mine[0].key == str(event.job_id).encode()
    decoded = from_kafka(mine[0])
    assert decoded.event == event


async def test_a_redelivered_event_has_one_effect(runtime):
    @runtime.consumer.on(JobSubmitted)
    async def record_effect(ctx, event):
        await ctx.conn.execute("INSERT INTO effects VALUES (%s, 1)", [event.job_id])

    envelope = envelop(submitted(), "/test")
    assert await runtime.consumer.apply(envelope) is True
    assert await runtime.consumer.apply(envelope) is False
    async with runtime.pool.connection() as conn:
        rows = await (await conn.execute("SELECT count(*) AS n FROM effects")).fetchone()
    assert rows["n"] == 1


async def test_a_handler_that_claims_in_its_first_statement_has_one_effect_and_a_duplicate_none(runtime):
    # Its write is unconditional: only the rollback of the duplicate's transaction undoes it.
    @runtime.consumer.on(JobSubmitted, claims=True)
    async def record_effect(ctx, event):
        rows = await (await ctx.conn.execute(*ctx.claim.first(
            "WITH effect AS (INSERT INTO effects VALUES (%s, 1))"
            " SELECT (SELECT ids FROM claimed_ids) AS claimed", [event.job_id]))).fetchall()
        ctx.claim.fresh(rows[0]["claimed"])

    envelope = envelop(submitted(), "/test")
    assert await runtime.consumer.apply(envelope) is True
    assert await runtime.consumer.apply(envelope) is False
    async with runtime.pool.connection() as conn:
        effects = await (await conn.execute("SELECT count(*) AS n FROM effects")).fetchone()
        inbox = await (await conn.execute("SELECT count(*) AS n FROM inbox")).fetchone()
    assert effects["n"] == 1 and inbox["n"] == 1


async def test_a_handler_registered_to_claim_that_does_not_is_refused_and_leaves_nothing(runtime):
    @runtime.consumer.on(JobSubmitted, claims=True)
    async def forget_the_claim(ctx, event):
        await ctx.conn.execute("INSERT INTO effects VALUES (%s, 1)", [event.job_id])

    with pytest.raises(RuntimeError, match="did not claim"):
        await runtime.consumer.apply(envelop(submitted(), "/test"))
    async with runtime.pool.connection() as conn:
        effects = await (await conn.execute("SELECT count(*) AS n FROM effects")).fetchone()
    assert effects["n"] == 0


async def test_a_failing_handler_rolls_back_and_leaves_no_inbox_row(runtime):
    @runtime.consumer.on(JobSubmitted)
    async def fail_after_write(ctx, event):
        await ctx.conn.execute("INSERT INTO effects VALUES (%s, 1)", [event.job_id])
        raise RuntimeError("boom")

    envelope = envelop(submitted(), "/test")
    with pytest.raises(RuntimeError):
        await runtime.consumer.apply(envelope)
    async with runtime.pool.connection() as conn:
        effects = await (await conn.execute("SELECT count(*) AS n FROM effects")).fetchone()
        inbox = await (await conn.execute("SELECT count(*) AS n FROM inbox")).fetchone()
    assert effects["n"] == 0 and inbox["n"] == 0


async def test_poison_unbranched_and_always_failing_messages_go_to_the_dlq(endpoints):
    settings = settings_for(endpoints, consumer_max_attempts=2, consumer_backoff_s=0.01)
    rt = ServiceRuntime(f"dlq_{uuid.uuid4().hex[:8]}", settings, migrations_package=None)
    failing = submitted(tenant="t-dlq")

    @rt.consumer.on(JobSubmitted)
    async def always_fail(ctx, event):
        if event.job_id == failing.job_id:
            raise RuntimeError("handler cannot cope")

    rt.consume_topics(["ingest"])
    await rt.start()

    class JobPaused(JobEvent):  # a type defined after it started: neither handled nor passed over
        event_type = "genline.job.paused.v1"
        publisher = "ingest"

    unbranched = JobPaused(job_id=uuid.uuid4(), tenant_id="t-dlq")
    try:
        async with rt.pool.connection() as conn, conn.transaction():
            await rt.emit(conn, failing)
            await rt.emit(conn, unbranched)
        rt.relay.notify()
        await rt.broker.publish(b"not json at all", TOPICS["ingest"], key=b"poison",
                                headers={"ce_id": "x", "ce_type": "genline.job.submitted.v1"})
        # Only this consumer's dead letters: services running beside the test consume the
        # ingest topic too, and dead-letter the poison message under their own names.
        ours = rt.consumer.group_id.encode()
        dlq = await read_topic(endpoints.kafka_bootstrap, dead_letter_topic(TOPICS["ingest"]), want=3, timeout_s=60,
                               keep=lambda r: dict(r.headers).get("genline_consumer") == ours)
    finally:
        del EVENT_TYPES[JobPaused.event_type]
        await rt.stop()
    errors = {r.key: dict(r.headers)["genline_error"] for r in dlq}
    assert b"handler cannot cope" in errors[str(failing.job_id).encode()]
    assert b"cannot decode event" in errors[b"poison"]
    assert b"has no branch for genline.job.paused.v1" in errors[str(unbranched.job_id).encode()]
    assert dict(dlq[0].headers)["genline_consumer"].startswith(b"genline-dlq_")


class KeysOnly(SealedContentSettings):
    """A service that asks ingest's data-key API, as the scorer and delivery do."""

    uses_object_store: ClassVar[bool] = False


async def test_a_handler_waiting_for_a_service_that_is_away_spends_no_attempt_and_applies_once_it_answers(endpoints):
    """Ingest's data-key API (a real HTTP server on loopback) answers 503 more times than the
    consumer tries an event (ingest restarts): the handler that asks it is applied again after
    a pause each time, counting none of its attempts, and takes effect once the API answers;
    the event never reaches the DLQ (it would, never to take effect, were the waits failures)."""
    unanswered, asked = 5, []

    async def job_key(request: Request) -> JSONResponse:
        asked.append(request.path_params["job_id"])
        if len(asked) <= unanswered:
            return JSONResponse({"status": 503}, status_code=503)
        return JSONResponse({"job_id": asked[-1], "key": base64.b64encode(b"k" * 32).decode()})

    with serve(Starlette(routes=[Route("/internal/v1/jobs/{job_id}/data-key", job_key)])) as url:
        settings = settings_for(endpoints, KeysOnly, data_key_url=url, data_key_cache_s=0.0, consumer_max_attempts=2,
                                consumer_backoff_s=0.01, consumer_backoff_max_s=0.05)
        rt = ServiceRuntime(f"away_{uuid.uuid4().hex[:8]}", settings, migrations_package=None)
        keys = DataKeys(settings, "scorer")
        waiting = submitted(tenant="t-away")

        @rt.consumer.on(JobSubmitted)
        async def with_the_key(ctx, event):
            if event.job_id == waiting.job_id:
                await keys.key(event.job_id)
                await ctx.conn.execute("INSERT INTO effects VALUES (%s, 1)", [event.job_id])

        rt.consume_topics(["ingest"])
        await rt.start()
        try:
            async with rt.pool.connection() as conn:
                await conn.execute("CREATE TABLE effects (job_id uuid, n int)")
            async with rt.pool.connection() as conn, conn.transaction():
                await rt.emit(conn, waiting)
            rt.relay.notify()

            async def applied() -> bool:
                async with rt.pool.connection() as conn:
                    return bool(await (await conn.execute("SELECT 1 FROM effects WHERE job_id = %s",
                                                          [waiting.job_id])).fetchone())

            await eventually(applied, 60)
        finally:
            await rt.stop()
            await keys.aclose()
    assert len(asked) == unanswered + 1
    # This consumer's dead letters hold nothing of the event (it reads the topic from its start,
    # so what other tests left there unreadable may be among them).
    ours = rt.consumer.group_id.encode()
    dead = await read_topic_to_end(endpoints.kafka_bootstrap, dead_letter_topic(TOPICS["ingest"]))
    assert str(waiting.job_id).encode() not in {r.key for r in dead if dict(r.headers).get("genline_consumer") == ours}


async def test_the_outbox_backlog_is_counted_while_the_broker_is_away(endpoints):
    """With no broker to publish to, the committed rows stay and the gauge shows how many."""
    name = f"backlog_{uuid.uuid4().hex[:8]}"
    rt = ServiceRuntime(name, settings_for(endpoints, kafka_bootstrap="127.0.0.1:9", outbox_poll_interval_s=0.1),
                        migrations_package=None)
    await migrate(rt.database_url, rt.name, packages=rt.migrations)
    await rt.pool.open(wait=True)
    try:
        async with rt.pool.connection() as conn, conn.transaction():
            for _ in range(3):
                await rt.emit(conn, submitted())
        rt.relay.start()
        backlog = None
        for _ in range(100):
            backlog = REGISTRY.get_sample_value("genline_outbox_pending", {"service": name})
            if backlog:
                break
            await asyncio.sleep(0.1)
        await rt.relay.stop(grace_s=1)
    finally:
        await rt.pool.close()
    assert backlog == 3


async def test_dead_letter_counters_exist_at_zero_before_the_first_message(endpoints):
    """So `increase()` sees the first message dead-lettered from each consumed topic."""
    name = f"dlqzero_{uuid.uuid4().hex[:8]}"
    rt = ServiceRuntime(name, settings_for(endpoints), migrations_package=None)
    rt.consumer.on(JobSubmitted)(lambda ctx, event: None)
    rt.consume_topics(["ingest", "ledger"])
    for topic in (TOPICS["ingest"], TOPICS["ledger"]):
        assert REGISTRY.get_sample_value("genline_dlq_messages_total", {"service": name, "topic": topic}) == 0
    assert REGISTRY.get_sample_value("genline_events_consumed_total", {
        "service": name, "type": JobSubmitted.event_type, "outcome": "applied"}) == 0


async def test_a_commit_in_another_process_wakes_the_relay_without_a_poll(endpoints):
    """The relay polls once an hour here: only the outbox's commit notification can wake it."""
    schema = f"wake_{uuid.uuid4().hex[:8]}"
    relaying = ServiceRuntime(schema, settings_for(endpoints, outbox_poll_interval_s=3600), migrations_package=None)
    await relaying.start()
    writer = ServiceRuntime(schema, settings_for(endpoints), migrations_package=None)  # never started: no relay of its own
    await writer.pool.open(wait=True)
    try:
        await asyncio.sleep(0.5)  # the relay's first pass has run; it now sleeps until woken
        async with writer.pool.connection() as conn, conn.transaction():
            envelope = await writer.emit(conn, submitted(tenant="t-wake"))
        records = await read_topic(endpoints.kafka_bootstrap, TOPICS["ingest"], want=1, timeout_s=60,
                                   keep=lambda r: dict(r.headers).get("ce_id") == envelope.id.encode())
    finally:
        await writer.pool.close()
        await relaying.stop()
    assert len(records) == 1


async def published(runtime, envelope) -> None:
    async def is_published() -> bool:
        async with runtime.pool.connection() as conn:
            row = await (await conn.execute("SELECT published_at FROM outbox WHERE event_id = %s",
                                            [envelope.id])).fetchone()
        return row["published_at"] is not None

    await eventually(is_published, 30, f"{envelope.id} published")


async def test_a_relay_that_publishes_everything_shows_no_backlog_without_counting_it(runtime):
    """Counting the outbox after every pass was one more query per commit; a pass that took
    every row already knows the backlog is empty."""
    counted: list[int | None] = []
    measure_backlog = runtime.relay.measure_backlog

    async def counting() -> int | None:
        counted.append(await measure_backlog())
        return counted[-1]

    runtime.relay.measure_backlog = counting
    for _ in range(3):
        async with runtime.pool.connection() as conn, conn.transaction():
            envelope = await runtime.emit(conn, submitted(tenant="t-backlog"))
        runtime.relay.notify()
        await published(runtime, envelope)
    assert counted == []
    assert REGISTRY.get_sample_value("genline_outbox_pending", {"service": runtime.name}) == 0


def listen_statement(rt) -> str:
    """A pattern of what the relay's listening connection last ran, as pg_stat_activity shows
    it: a LISTEN of every channel the process hears, the outbox's among them."""
    return f'%LISTEN "{outbox_channel(rt.name)}"%'


async def listening(rt) -> None:
    """Until the relay's listener has subscribed to the outbox's commit notifications."""
    async def subscribed() -> bool:
        async with rt.pool.connection() as conn:
            row = await (await conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE %s",
                                            [listen_statement(rt)])).fetchone()
        return row["n"] > 0

    await eventually(subscribed, 30, "the relay's listener connected")


async def test_while_listening_the_relay_makes_one_pass_per_commit_of_this_process(endpoints):
    """A commit's own NOTIFY wakes the relay; the process's `notify()` of the same commit must
    not wake it again, which made a second, empty pass whenever the NOTIFY came during the
    first. The relay polls once an hour here."""
    rt = ServiceRuntime(f"onepass_{uuid.uuid4().hex[:8]}", settings_for(endpoints, outbox_poll_interval_s=3600), migrations_package=None)
    await rt.start()
    passes: list[int] = []
    relay_batch = rt.relay.relay_batch

    async def counted(*args, **kwargs) -> int:
        passes.append(await relay_batch(*args, **kwargs))
        return passes[-1]

    try:
        await listening(rt)
        await asyncio.sleep(0.5)  # the passes of the start have run; the relay sleeps until woken
        rt.relay.relay_batch = counted
        for _ in range(3):
            async with rt.pool.connection() as conn, conn.transaction():
                envelope = await rt.emit(conn, submitted(tenant="t-onepass"))
            await published(rt, envelope)  # on the NOTIFY alone: no notify() was called
            rt.relay.notify()  # announced late, as a busy process may: nothing is left to publish
            await asyncio.sleep(0.3)  # time for the pass it would start
        seen = list(passes)  # (stopping makes a last pass)
    finally:
        await rt.stop()
    assert seen == [1, 1, 1]


async def test_without_its_listener_the_relay_wakes_on_this_process_commits(endpoints):
    """The relay polls once an hour and listens again only after as long: once its listening
    connection is gone, `notify()` alone must wake it."""
    rt = ServiceRuntime(f"nolisten_{uuid.uuid4().hex[:8]}", settings_for(endpoints, outbox_poll_interval_s=3600),
                        migrations_package=None)
    await rt.start()
    try:
        await listening(rt)
        async with rt.pool.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE %s",
                               [listen_statement(rt)])

        async def lost() -> bool:
            return not rt.relay._listening

        await eventually(lost, 30, "the relay saw its listener go")
        async with rt.pool.connection() as conn, conn.transaction():
            envelope = await rt.emit(conn, submitted(tenant="t-nolisten"))
        rt.relay.notify()
        await published(rt, envelope)
    finally:
        await rt.stop()


async def test_after_commit_runs_once_committed_and_never_after_a_rollback(runtime):
    seen: list[tuple[str, object]] = []

    @runtime.consumer.on(JobSubmitted)
    async def write_then_maybe_fail(ctx, event):
        await ctx.conn.execute("INSERT INTO effects VALUES (%s, 1)", [event.job_id])
        ctx.after_commit(lambda: seen.append((event.tenant_id, ctx.conn.info.transaction_status)))
        if event.tenant_id == "t-fail":
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await runtime.consumer.apply(envelop(submitted(tenant="t-fail"), "/test"))
    assert seen == []
    await runtime.consumer.apply(envelop(submitted(tenant="t-ok"), "/test"))
    assert seen == [("t-ok", psycopg.pq.TransactionStatus.IDLE)]  # no transaction open any more


async def test_a_relay_pass_that_waited_for_a_recovery_reads_what_the_recovery_queued_again(endpoints):
    """A recovery holds the outbox's lock while it queues published rows again; a pass that
    started meanwhile waits, and must then read them, in their order, before anything newer:
    its read takes its snapshot after the locks, not when the pass began."""
    schema = f"relay_{uuid.uuid4().hex[:8]}"
    await migrate(endpoints.database_url, schema, packages=[COMMON_MIGRATIONS])
    locks = [BUS_FENCE, outbox_lock(schema), relay_lock(schema), RELAY_BATCH]

    async def connect() -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True,
                                                     row_factory=psycopg.rows.dict_row)
        await conn.execute(f'SET search_path TO "{schema}"')
        return conn

    async with await connect() as recovery, await connect() as relay:
        for n, published in ((1, "now()"), (2, "NULL")):
            await recovery.execute(f"INSERT INTO outbox (event_id, event_type, topic, headers, body, published_at)"
                                   f" VALUES (%s, 'e{n}', 't', '{{}}', '', {published})", [uuid.uuid4()])
        async with recovery.transaction():
            await recovery.execute("SELECT pg_advisory_xact_lock(%s)", [outbox_lock(schema)])
            await recovery.execute("UPDATE outbox SET published_at = NULL WHERE event_type = 'e1'")

            async def pass_rows() -> list[str]:
                async with relay.transaction():
                    rows = await (await relay.execute(UNPUBLISHED_ROWS, locks)).fetchall()
                    return [row["event_type"] for row in rows]

            passing = asyncio.create_task(pass_rows())

            async def waiting() -> bool:
                [row] = await (await recovery.execute(
                    "SELECT count(*) AS n FROM pg_locks WHERE pid = %s AND NOT granted", [relay.info.backend_pid])).fetchall()
                return row["n"] > 0
            await eventually(waiting, 30, "the pass waits for the recovery's lock")
        assert await passing == ["e1", "e2"]
        await recovery.execute(f'DROP SCHEMA "{schema}" CASCADE')
