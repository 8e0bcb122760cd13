"""An event of a type this release does not know, as a later release would write it, on the
real broker and PostgreSQL: the consumer neither dead-letters nor drops it but holds it, with
the release that wrote it, and counts it; the events behind it are applied as ever; once the
type is known (a replica of the later release is the one looking), the held event is applied
through the inbox and let go."""

import json
import uuid
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from genline_stack.embedded import create_topics
from services.common.bus.envelope import rfc3339
from services.common.bus.replay import read_topic_to_end
from services.common.contracts import EVENT_TYPES, JobEvent, JobSubmitted, all_topics, dead_letter_topic, topic_of
from services.common.runtime import ServiceRuntime
from tests.conftest import settings_for
from tests.kafka import submitted
from tests.polling import eventually

LATER = "genline.job.paused.v1"


def later_release_record(job_id: uuid.UUID) -> tuple[bytes, dict[str, str]]:
    """A JobPaused as release 0.3.0 would write it: a type 0.2.0 has never heard of."""
    headers = {"ce_id": str(uuid.uuid4()), "ce_source": "/genline/ingest", "ce_type": LATER, "ce_specversion": "1.0",
               "ce_time": rfc3339(datetime.now(UTC)),
               "content-type": "application/json", "ce_subject": str(job_id), "ce_tenantid": "t-held",
               "ce_producerversion": "0.3.0"}
    body = json.dumps({"job_id": str(job_id), "tenant_id": "t-held", "paused_for_s": 30}).encode()
    return body, headers


async def held_rows(runtime) -> list[dict]:
    async with runtime.pool.connection() as conn:
        return await (await conn.execute("SELECT event_type, producer_version, record_key FROM events_held")).fetchall()


async def test_a_type_this_release_does_not_know_is_held_not_dead_lettered_then_applied_once_known(endpoints):
    namespace = f"held{uuid.uuid4().hex[:6]}"  # topics of its own: the platform's consumers never see the record
    await create_topics(endpoints.kafka_bootstrap, all_topics(namespace))
    settings = settings_for(endpoints, topic_namespace=namespace, consumer_max_attempts=2, consumer_backoff_s=0.01)
    runtime = ServiceRuntime(f"held_{uuid.uuid4().hex[:8]}", settings, migrations_package=None)
    applied: list[object] = []

    @runtime.consumer.on(JobSubmitted)
    async def note_submitted(ctx, event):
        applied.append(event.job_id)

    runtime.consume_topics(["ingest"])
    await runtime.start()
    paused_job, behind = uuid.uuid4(), submitted(tenant="t-held")
    try:
        body, headers = later_release_record(paused_job)
        await runtime.broker.publish(body, topic_of("ingest", namespace), key=str(paused_job).encode(), headers=headers)
        async with runtime.pool.connection() as conn, conn.transaction():
            await runtime.emit(conn, behind)
        runtime.relay.notify()
        await eventually(lambda: behind.job_id in applied, timeout_s=60)

        rows = await held_rows(runtime)
        assert [(r["event_type"], r["producer_version"], bytes(r["record_key"])) for r in rows] == \
               [(LATER, "0.3.0", str(paused_job).encode())]
        assert REGISTRY.get_sample_value("genline_events_held_total", {"service": runtime.name, "type": LATER}) == 1
        dead = await read_topic_to_end(endpoints.kafka_bootstrap, dead_letter_topic(topic_of("ingest", namespace)))
        assert dead == []
        assert await runtime.consumer.apply_held() == 0  # still unknown: it stays

        class JobPaused(JobEvent):  # the later release's type, known now
            event_type = LATER
            publisher = "ingest"
            paused_for_s: int

        @runtime.consumer.on(JobPaused)
        async def note_paused(ctx, event):
            applied.append(("paused", event.job_id, event.paused_for_s))

        assert await runtime.consumer.apply_held() == 1
        assert ("paused", paused_job, 30) in applied and await held_rows(runtime) == []
        async with runtime.pool.connection() as conn:
            inbox = await (await conn.execute("SELECT count(*) AS n FROM inbox WHERE event_type = %s", [LATER])).fetchone()
        assert inbox["n"] == 1
    finally:
        EVENT_TYPES.pop(LATER, None)
        await runtime.stop()
