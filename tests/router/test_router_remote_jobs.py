"""The router service pays for each remote job once, counted at Replicate's simulator:
a poll answered 503 or 429 is tried again (one prediction, and the job gets its
candidates, fetched without the token from another host), and a router SIGKILLed while a
prediction runs resumes it after its restart (one prediction in all, written in
PostgreSQL before its first poll, sent with Cancel-After) and the job ends."""

import asyncio
import time
import uuid

import psycopg
import pytest

from genline_stack.embedded import create_topics
from genline_stack.fleet import ServiceFleet
from services.common.contracts import CandidatesGenerated, all_topics
from tests.router.market import SECRET, Script
from tests.router.service import RouterTopic, credits_reserved, job_spec, publish, router_settings, running_router
from tests.router.stubs import entry

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes


@pytest.mark.parametrize("script", [
    Script(poll_statuses=[503], output="foreign"),
    Script(poll_statuses=[429], retry_after_s=0.1, wait_in_body=True, output="foreign"),
], ids=["poll 503", "poll 429, wait in the body"])
async def test_a_poll_error_costs_no_second_prediction(endpoints, object_store, tmp_path, simulators, script):
    replicate = simulators["replicate"]
    [fault] = script.poll_statuses
    replicate.market.reset(script)
    settings = router_settings(endpoints, tmp_path, {"replicate": entry(replicate, overall_s=20.0)})
    spec = job_spec(images=1, candidates=2)
    async with running_router(settings) as router, RouterTopic(settings) as topic:
        await publish(settings, credits_reserved(spec))
        event = await topic.wait_for(spec.job_id, 1)
        async with router.runtime.pool.connection() as conn:
            rows = await (await conn.execute("SELECT handle->>'id' AS id, state FROM remote_jobs")).fetchall()
    assert isinstance(event, CandidatesGenerated) and len(event.candidates) == 2
    assert [c.outcome for c in event.calls] == ["ok"]
    [prediction] = replicate.market.submissions
    assert rows == [{"id": prediction.id, "state": "succeeded"}]
    assert replicate.market.refused[fault] == 1, "the poll error was never played"
    assert replicate.market.foreign_credentials == []


def remote_jobs(database_url: str, schema: str) -> list[dict]:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        try:
            return conn.execute("SELECT handle->>'id' AS id, state FROM remote_jobs").fetchall()
        except psycopg.errors.UndefinedTable:
            return []


async def test_a_router_killed_while_a_prediction_runs_resumes_it_after_restart(endpoints, object_store, tmp_path,
                                                                                 simulators):
    replicate = simulators["replicate"]
    replicate.market.reset(Script(latency_s=8.0))
    namespace = f"resume{uuid.uuid4().hex[:6]}"
    settings = router_settings(endpoints, tmp_path, {"replicate": entry(replicate, overall_s=60.0)},
                               topic_namespace=namespace, schema_name=f"{namespace}_router")
    await create_topics(settings.kafka_bootstrap, all_topics(namespace))
    fleet = ServiceFleet(endpoints=endpoints, log_dir=tmp_path / "logs", namespace=namespace, extra_env={
        "GENLINE_ENVIRONMENT": "test", "GENLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "GENLINE_PROVIDERS_PATH": settings.providers_path, "GENLINE_PROVIDER_SECRETS": f'{{"STUB_KEY": "{SECRET}"}}',
        "GENLINE_CLAIM_LEASE_S": "2", "GENLINE_ATTEMPT_POLL_INTERVAL_S": "0.3"})
    spec = job_spec(images=1, candidates=2)
    try:
        fleet.start("router")
        await asyncio.to_thread(fleet.wait_ready, "router")
        async with RouterTopic(settings) as topic:
            await publish(settings, credits_reserved(spec))
            deadline = time.monotonic() + 60
            while not remote_jobs(settings.database_url.get_secret_value(), settings.schema_name):
                assert time.monotonic() < deadline, "the prediction was never written down"
                await asyncio.sleep(0.1)
            [running] = remote_jobs(settings.database_url.get_secret_value(), settings.schema_name)
            [prediction] = replicate.market.submissions
            assert running == {"id": prediction.id, "state": "running"}
            assert not prediction.finished(time.monotonic())

            fleet.kill("router")
            fleet.start("router")
            await asyncio.to_thread(fleet.wait_ready, "router")
            event = await topic.wait_for(spec.job_id, 1, timeout_s=90)
    finally:
        fleet.stop_all()
    assert isinstance(event, CandidatesGenerated) and len(event.candidates) == 2
    assert len(replicate.market.submissions) == 1, "the restarted router submitted the prediction again"
    assert replicate.market.cancels == []
    assert prediction.headers["cancel-after"] == "60s"
    assert remote_jobs(settings.database_url.get_secret_value(), settings.schema_name) == [{"id": prediction.id, "state": "succeeded"}]
