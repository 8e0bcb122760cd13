"""A consumer's lanes and positions against the real broker and PostgreSQL: jobs applied side
by side and each in its order, applied offsets committed every interval and before a stop,
and two relays of one outbox that keep each job's order."""

import asyncio
import uuid

from genline_stack.embedded import create_topics
from services.common.bus.envelope import envelop
from services.common.contracts import JobSubmitted, all_topics, topic_of
from services.common.runtime import ServiceRuntime
from tests.conftest import settings_for
from tests.kafka import publish_envelopes, read_topic, submitted


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
    rt = ServiceRuntime(f"lanes_{tag}", settings, migrations_package=None)
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
    rt.consume_topics(["ingest"])
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
    rt = ServiceRuntime(f"commits_{tag}", settings, migrations_package=None)
    applied = []

    @rt.consumer.on(JobSubmitted)
    async def record(ctx, event):
        applied.append(event.job_id)

    jobs = [envelop(submitted(tenant=f"t-commits-{tag}"), "/test") for _ in range(3)]
    await publish_envelopes(endpoints.kafka_bootstrap, jobs, lambda _: topic_of("ingest", settings.topic_namespace))
    rt.consume_topics(["ingest"])
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
    replicas = [ServiceRuntime(f"relays_{tag}", settings, migrations_package=None) for _ in range(3)]
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
