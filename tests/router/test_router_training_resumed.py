"""A router SIGKILLed while it drives a training at Replicate: the training was written down with
its handle before its first poll, so the restarted router resumes it (polls the same training)
instead of paying for another; its weights are copied into the bucket and handed to
cog-flux by a presigned link it reads, and the order gets its candidates."""

import asyncio
import json
import time
import uuid

import psycopg
import pytest

from genline_stack.embedded import create_topics
from genline_stack.fleet import ServiceFleet
from services.common.contracts import CandidatesGenerated, IdentityTrained, all_topics
from tests.router.identity_apis import IdentityMarket, TrainingScript, replicate_identity_app
from tests.router.market import SECRET
from tests.router.service import RouterTopic, credits_reserved, job_spec, publish, router_settings
from tests.router.stubs import serve
from tests.router.subject_photos import astronaut_photos, sealed_subject, serving_keys
from tests.router.test_identity_models import COG_FLUX
from tests.router.test_identity_trainers import replicate_trainer

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes


def identities(database_url: str, schema: str) -> list[dict]:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        try:
            return conn.execute("SELECT state, handle->>'id' AS remote FROM identities").fetchall()
        except psycopg.errors.UndefinedTable:
            return []


async def test_a_router_killed_mid_training_resumes_it_after_restart_and_pays_one_training(endpoints, object_store,
                                                                                          tmp_path):
    market = IdentityMarket()
    market.reset(TrainingScript(latency_s=10.0, webhooks=0))
    with serve(replicate_identity_app(market)) as url, serving_keys() as (keys, keys_url):
        subject = await sealed_subject(object_store, keys, astronaut_photos())
        cog_flux = {"adapter": "replicate", "endpoint": url, "credentials": "STUB_KEY",
                    "models": [{"name": "flux-dev-lora", "version": "1", **COG_FLUX}],
                    "capabilities": {"identity": ["lora"], "max_images_per_request": 2, "max_megapixels": 1.2},
                    "price": {"per_image_micro_usd": 30_000}, "concurrency": 2, "poll_interval_s": 0.05,
                    "timeouts": {"submit_s": 5, "overall_s": 30}}
        namespace = f"resumed{uuid.uuid4().hex[:6]}"
        settings = router_settings(endpoints, tmp_path, {
            "trainer": replicate_trainer(url, trainer={"poll_interval_s": 0.3}), "flux-dev-lora": cog_flux},
            topic_namespace=namespace, schema_name=f"{namespace}_router")
        await create_topics(settings.kafka_bootstrap, all_topics(namespace))
        fleet = ServiceFleet(endpoints=endpoints, log_dir=tmp_path / "logs", namespace=namespace, extra_env={
            "GENLINE_ENVIRONMENT": "test", "GENLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "GENLINE_PROVIDERS_PATH": settings.providers_path,
            "GENLINE_PROVIDER_SECRETS": json.dumps({"STUB_KEY": SECRET}), "GENLINE_DATA_KEY_URL": keys_url,
            "GENLINE_CLAIM_LEASE_S": "2", "GENLINE_ATTEMPT_POLL_INTERVAL_S": "0.3",
            "GENLINE_TRAINING_LOOK_INTERVAL_S": "0.3", "GENLINE_IDENTITY_WAIT_S": "1"})
        spec = job_spec(images=1, candidates=2, subject=subject, identity="lora", width=1024, height=1024)
        database = settings.database_url.get_secret_value()
        try:
            fleet.start("router")
            await asyncio.to_thread(fleet.wait_ready, "router")
            async with RouterTopic(settings) as topic:
                await publish(settings, credits_reserved(spec))
                deadline = time.monotonic() + 60
                while not any(row["remote"] for row in identities(database, settings.schema_name)):
                    assert time.monotonic() < deadline, "the training was never written down"
                    await asyncio.sleep(0.1)
                [training] = market.trainings.values()
                assert not training.ended(market.script)

                fleet.kill("router")
                fleet.start("router")
                await asyncio.to_thread(fleet.wait_ready, "router")
                event = await topic.wait_for(spec.job_id, 1, timeout_s=120)
                await topic.read_some()
        finally:
            fleet.stop_all()
    assert isinstance(event, CandidatesGenerated) and len(event.candidates) == 2
    assert len(market.trainings) == 1 and not training.canceled, "the restarted router trained again"
    assert [e.identity_id for e in topic.events if isinstance(e, IdentityTrained)] != []
    assert identities(database, settings.schema_name) == [{"state": "trained", "remote": training.id}]
    [(link, status)] = market.fetched
    assert status == 200 and ".safetensors?" in link
