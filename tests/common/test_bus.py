"""The outbox, inbox and DLQ against the real broker and PostgreSQL."""

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from prometheus_client import REGISTRY

from genline_stack.embedded import create_topics
from services.common.bus.envelope import envelop, from_kafka
from services.common.bus.outbox import outbox_channel
from services.common.bus.replay import read_topic_to_end
from services.common.contracts import TOPICS, JobSpec, JobSubmitted, all_topics, dead_letter_topic, topic_of
from services.common.db import migrate
from services.common.runtime import ServiceRuntime
from tests.conftest import settings_for
from tests.kafka import publish_envelopes, read_topic
from tests.polling import eventually


def submitted(tenant="t-bus") -> JobSubmitted:
    job_id = uuid.uuid4()
    spec = JobSpec(job_id=job_id, tenant_id=tenant, template="generic", prompt="a red fox",
                   images=2, candidates=3, seed=7, submitted_at=datetime.now(UTC))
    return JobSubmitted(job_id=job_id, tenant_id=tenant, job=spec)


@pytest.fixture
async def runtime(endpoints):
    rt = ServiceRuntime(f"bus_{uuid.uuid4().hex[:8]}", settings_for(endpoints), None)
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
    decoded = from_kafka(headers, mine[0].key, mine[0].value)
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


async def test_poison_and_always_failing_messages_go_to_the_dlq(endpoints):
    settings = settings_for(endpoints, consumer_max_attempts=2, consumer_backoff_s=0.01)
    rt = ServiceRuntime(f"dlq_{uuid.uuid4().hex[:8]}", settings, None)
    failing = submitted(tenant="t-dlq")

    @rt.consumer.on(JobSubmitted)
    async def always_fail(ctx, event):
        if event.job_id == failing.job_id:
            raise RuntimeError("handler cannot cope")

    rt.consume(["ingest"])
    await rt.start()
    try:
        async with rt.pool.connection() as conn, conn.transaction():
            await rt.emit(conn, failing)
        rt.relay.notify()
        await rt.broker.publish(b"not json at all", TOPICS["ingest"], key=b"poison",
                                headers={"ce_id": "x", "ce_type": "genline.job.submitted.v1"})
        # Only this consumer's dead letters: services running beside the test consume the
        # ingest topic too, and dead-letter the poison message under their own names.
        ours = rt.consumer.group_id.encode()
        dlq = await read_topic(endpoints.kafka_bootstrap, dead_letter_topic(TOPICS["ingest"]), want=2, timeout_s=60,
                               keep=lambda r: dict(r.headers).get("genline_consumer") == ours)
    finally:
        await rt.stop()
    errors = {r.key: dict(r.headers)["genline_error"] for r in dlq}
    assert b"handler cannot cope" in errors[str(failing.job_id).encode()]
    assert b"cannot decode event" in errors[b"poison"]
    assert dict(dlq[0].headers)["genline_consumer"].startswith(b"genline-dlq_")


async def test_the_outbox_backlog_is_counted_while_the_broker_is_away(endpoints):
    """With no broker to publish to, the committed rows stay and the gauge shows how many."""
    name = f"backlog_{uuid.uuid4().hex[:8]}"
    rt = ServiceRuntime(name, settings_for(endpoints, kafka_bootstrap="127.0.0.1:9", outbox_poll_interval_s=0.1),
                        None)
    await migrate(rt.database_url, rt.name, rt.migrations)
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
    rt = ServiceRuntime(name, settings_for(endpoints), None)
    rt.consumer.on(JobSubmitted)(lambda ctx, event: None)
    rt.consume(["ingest", "ledger"])
    for topic in (TOPICS["ingest"], TOPICS["ledger"]):
        assert REGISTRY.get_sample_value("genline_dlq_messages_total", {"service": name, "topic": topic}) == 0
    assert REGISTRY.get_sample_value("genline_events_consumed_total", {
        "service": name, "type": JobSubmitted.event_type, "outcome": "applied"}) == 0


async def test_a_commit_in_another_process_wakes_the_relay_without_a_poll(endpoints):
    """The relay polls once an hour here: only the outbox's commit notification can wake it."""
    schema = f"wake_{uuid.uuid4().hex[:8]}"
    relaying = ServiceRuntime(schema, settings_for(endpoints, outbox_poll_interval_s=3600), None)
    await relaying.start()
    writer = ServiceRuntime(schema, settings_for(endpoints), None)  # never started: no relay of its own
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
    """What the relay's listening connection last ran, as pg_stat_activity shows it."""
    return f'LISTEN "{outbox_channel(rt.name)}"'


async def listening(rt) -> None:
    """Until the relay's listener has subscribed to the outbox's commit notifications."""
    async def subscribed() -> bool:
        async with rt.pool.connection() as conn:
            row = await (await conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE query = %s",
                                            [listen_statement(rt)])).fetchone()
        return row["n"] > 0

    await eventually(subscribed, 30, "the relay's listener connected")


async def test_while_listening_the_relay_makes_one_pass_per_commit_of_this_process(endpoints):
    """A commit's own NOTIFY wakes the relay; the process's `notify()` of the same commit must
    not wake it again, which made a second, empty pass whenever the NOTIFY came during the
    first. The relay polls once an hour here."""
    rt = ServiceRuntime(f"onepass_{uuid.uuid4().hex[:8]}", settings_for(endpoints, outbox_poll_interval_s=3600), None)
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
                        None)
    await rt.start()
    try:
        await listening(rt)
        async with rt.pool.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
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


async def test_jobs_are_applied_side_by_side_and_each_job_in_order(endpoints):
    """The first job's first event waits for the second job to start: one event at a time
    would never get there. Each job's own events still apply in the order sent. Lanes run
    side by side only what one fetch brought, and the broker may split the two jobs over two
    fetches now and then: a run where that happened is tried again, up to three times."""
    for _ in range(3):
        overlapped, applied, jobs = await run_two_jobs_in_lanes(endpoints)
        if overlapped == [True]:
            break
    assert overlapped == [True]
    first, second = jobs
    assert applied == {first.job_id: [0, 1, 2, 3, 4], second.job_id: [0, 1, 2, 3, 4]}


async def run_two_jobs_in_lanes(endpoints):
    tag = uuid.uuid4().hex[:8]
    # A topic of its own: behind the session's earlier events, the two jobs could sit in
    # different fetches, and lanes only run side by side what one fetch brought.
    settings = settings_for(endpoints, topic_namespace=f"lanes{tag}")
    await create_topics(settings.kafka_bootstrap, all_topics(settings.topic_namespace))
    rt = ServiceRuntime(f"lanes_{tag}", settings, None)
    first, second = submitted(tenant=f"t-lanes-{tag}"), submitted(tenant=f"t-lanes-{tag}")
    applied = {first.job_id: [], second.job_id: []}
    second_started, overlapped = asyncio.Event(), []

    @rt.consumer.on(JobSubmitted)
    async def record_step(ctx, event):
        if event.job_id not in applied:
            return  # other tests' events on the shared topic
        step = int(event.job.prompt.clear.removeprefix("step "))  # a plain string reads as clear text
        if event.job_id == second.job_id:
            second_started.set()
        elif step == 0:
            try:
                await asyncio.wait_for(second_started.wait(), 20)
                overlapped.append(True)
            except TimeoutError:
                overlapped.append(False)
        applied[event.job_id].append(step)

    steps = [envelop(job.model_copy(update={"job": job.job.model_copy(update={"prompt": f"step {n}"})}), "/test")
             for n in range(5) for job in (first, second)]
    await publish_envelopes(endpoints.kafka_bootstrap, steps, lambda _: topic_of("ingest", settings.topic_namespace))
    rt.consume(["ingest"])
    await rt.start()
    try:
        for _ in range(600):
            if all(len(done) == 5 for done in applied.values()):
                break
            await asyncio.sleep(0.1)
    finally:
        await rt.stop()
    return overlapped, applied, (first, second)


async def committed_offsets(bootstrap: str, group_id: str, topic: str) -> int:
    """The sum of a consumer group's committed offsets over the partitions of `topic`."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    # Asks the group's coordinator without joining the group.
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await reader.start()
    try:
        await reader.topics()  # loads the cluster's metadata
        partitions = reader.partitions_for_topic(topic) or set()
        committed = [await reader.committed(TopicPartition(topic, p)) for p in sorted(partitions)]
    finally:
        await reader.stop()
    return sum(offset or 0 for offset in committed)


async def apply_jobs_then(endpoints, commit_interval_ms: int, while_running):
    """A consumer on a topic of its own applies three events; `while_running(rt)` runs once
    all are applied, before the consumer stops. Returns the consumer's group id and topic."""
    tag = uuid.uuid4().hex[:8]
    settings = settings_for(endpoints, topic_namespace=f"commits{tag}", kafka_commit_interval_ms=commit_interval_ms)
    await create_topics(settings.kafka_bootstrap, all_topics(settings.topic_namespace))
    rt = ServiceRuntime(f"commits_{tag}", settings, None)
    applied = []

    @rt.consumer.on(JobSubmitted)
    async def record(ctx, event):
        applied.append(event.job_id)

    jobs = [envelop(submitted(tenant=f"t-commits-{tag}"), "/test") for _ in range(3)]
    await publish_envelopes(endpoints.kafka_bootstrap, jobs, lambda _: topic_of("ingest", settings.topic_namespace))
    rt.consume(["ingest"])
    await rt.start()
    try:
        for _ in range(600):
            if len(applied) == 3:
                break
            await asyncio.sleep(0.1)
        assert len(applied) == 3
        await while_running(rt)
    finally:
        await rt.stop()
    return rt.consumer.group_id, ingest_topic(rt)


def ingest_topic(rt: ServiceRuntime) -> str:
    return topic_of("ingest", rt.settings.topic_namespace)


async def test_applied_offsets_are_committed_every_interval_while_the_consumer_runs(endpoints):
    async def committed_while_running(rt):
        for _ in range(300):
            if await committed_offsets(endpoints.kafka_bootstrap, rt.consumer.group_id, ingest_topic(rt)) == 3:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the applied offsets were not committed while the consumer ran")

    await apply_jobs_then(endpoints, 200, committed_while_running)


async def test_a_stopping_consumer_commits_what_it_applied_before_the_interval_is_up(endpoints):
    uncommitted_while_running = []

    async def note_committed(rt):
        uncommitted_while_running.append(await committed_offsets(endpoints.kafka_bootstrap, rt.consumer.group_id,
                                                                 ingest_topic(rt)))

    group_id, topic = await apply_jobs_then(endpoints, 600_000, note_committed)
    assert uncommitted_while_running == [0]
    assert await committed_offsets(endpoints.kafka_bootstrap, group_id, topic) == 3


async def test_two_relays_of_one_outbox_keep_each_jobs_order(endpoints):
    """Replicas of one service (ingest scales out) each run a relay over the same outbox. They
    take turns: one relay selecting later rows while another was still publishing earlier
    ones would put a job's later events on the topic first."""
    tag = uuid.uuid4().hex[:8]
    settings = settings_for(endpoints, topic_namespace=f"relays{tag}")
    await create_topics(settings.kafka_bootstrap, all_topics(settings.topic_namespace))
    replicas = [ServiceRuntime(f"relays_{tag}", settings, None) for _ in range(3)]
    for replica in replicas:
        await replica.start()
    jobs = [submitted(tenant=f"t-relays-{tag}") for _ in range(6)]
    sent: dict[bytes, list[bytes]] = {str(job.job_id).encode(): [] for job in jobs}

    async def write(job: JobSubmitted) -> None:
        # Each job's events from one writer, one commit after another, through every
        # replica in turn: their order is the order of `sent`, while the jobs' commits
        # interleave and each wakes every relay.
        for step in range(40):
            replica = replicas[step % len(replicas)]
            async with replica.pool.connection() as conn, conn.transaction():
                envelope = await replica.emit(conn, job)
            sent[str(job.job_id).encode()].append(envelope.id.encode())
            replica.relay.notify()

    try:
        await asyncio.gather(*(write(job) for job in jobs))
        want = sum(len(ids) for ids in sent.values())
        records = await read_topic(settings.kafka_bootstrap, topic_of("ingest", settings.topic_namespace),
                                   want=want, timeout_s=60)
    finally:
        for replica in replicas:
            await replica.stop()
    received: dict[bytes, list[bytes]] = {key: [] for key in sent}
    for record in records:
        received[record.key].append(dict(record.headers)["ce_id"])
    assert received == sent
