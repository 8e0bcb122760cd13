"""Trainings at fal's queue trainers and Replicate's trainings API, against simulators of their
published shapes (identity_apis.py), driven as the router drives them: the input each trainer
publishes (the photos as one zip, the trigger word, the steps), the handle written before the
first poll, the weights copied into the bucket as soon as they exist (a Replicate tar unpacked),
IdentityTrained or IdentityTrainingFailed; and the faults: a training that fails, a destination
that does not exist, one that runs 40 minutes of polls on a simulated clock and one that runs
past its time, a callback delivered twice or never, a router that dies mid-training (another
resumes it: one training paid), weights whose URL expired before the copy; an erased
identity's version deleted at Replicate and its weights in the bucket."""

import asyncio
import io
import zipfile

import httpx
import pytest
from starlette.applications import Starlette

from services.common.contracts import IdentityTrained, IdentityTrainingFailed
from services.common.db import COMMON_MIGRATIONS, migrate, open_pool
from services.common.storage import StorageError
from services.router.clock import ManualClock
from services.router.providers.base import ProviderContext
from services.router.providers.factory import build_providers
from services.router.providers.registry import parse_registry
from services.router.routes import provider_webhook_route
from services.router.subjects import store
from services.router.subjects.files import SubjectFiles
from tests.router.identity_apis import (
    WEBHOOK_SECRET,
    IdentityMarket,
    TrainingScript,
    fal_identity_app,
    replicate_identity_app,
)
from tests.router.market import SECRET
from tests.router.stubs import serve
from tests.router.subject_photos import astronaut_photos, sealed_subject, serving_keys
from tests.router.trainings import Bench, data_keys_at, serving_here


@pytest.fixture(scope="module")
def fal():
    market = IdentityMarket()
    with serve(fal_identity_app(market)) as url:
        yield market, url


@pytest.fixture(scope="module")
def replicate():
    market = IdentityMarket()
    with serve(replicate_identity_app(market)) as url:
        yield market, url


@pytest.fixture(scope="module")
def keys():
    with serving_keys() as served:
        yield served


@pytest.fixture
async def bench(endpoints, object_store, keys):
    schema = f"router_trainings_{__import__('uuid').uuid4().hex[:8]}"
    await migrate(endpoints.database_url, schema, packages=[COMMON_MIGRATIONS, "services.router"])
    pool = open_pool(endpoints.database_url, schema, size=4)
    await pool.open()
    async with httpx.AsyncClient() as client:
        yield Bench(pool, SubjectFiles(object_store, data_keys_at(endpoints, keys[1])), client)
    await pool.close()


@pytest.fixture
async def subject(object_store, keys):
    return await sealed_subject(object_store, keys[0], astronaut_photos())


def fal_trainer(url: str, model: str = "fal-ai/flux-lora-fast-training", **trainer) -> dict:
    return {"adapter": "fal", "endpoint": url, "credentials": "STUB_KEY", "options": {"storage_url": url},
            "models": [{"name": "fast-training", "version": "1", "remote_id": model}], "capabilities": {"stages": []},
            "price": {}, "concurrency": 2, "timeouts": {"submit_s": 5, "overall_s": 30, "poll_backoff_max_s": 1},
            "trainer": {"model": {"name": "fast-training", "version": "1", "remote_id": model}, "base": "flux-dev",
                        "fixed": {"is_style": False, "create_masks": True}, "price": {"per_run_micro_usd": 2_000_000},
                        "expected_s": 600, "timeout_s": 3600, "poll_interval_s": 0.01} | trainer}


def replicate_trainer(url: str, **entry) -> dict:
    trainer = entry.pop("trainer", {})
    return {"adapter": "replicate", "endpoint": url, "credentials": "STUB_KEY",
            "models": [{"name": "flux-dev-lora-trainer", "version": "1", "remote_id": "ostris/flux-dev-lora-trainer:abc"}],
            "capabilities": {"stages": []}, "price": {}, "concurrency": 2,
            "timeouts": {"submit_s": 5, "overall_s": 30, "poll_backoff_max_s": 1},
            "trainer": {"model": {"name": "flux-dev-lora-trainer", "version": "1",
                                  "remote_id": "ostris/flux-dev-lora-trainer:abc"},
                        "base": "flux-dev", "destination": "genline/identities", "images": {"field": "input_images"},
                        "steps": {"default": 1000, "min": 3, "max": 6000}, "fixed": {"autocaption": True},
                        "price": {"per_step_micro_usd": 1850}, "weights": "weights", "expected_s": 1200,
                        "timeout_s": 3600, "poll_interval_s": 0.01} | trainer, **entry}


async def test_a_fal_training_sends_the_published_input_and_its_weights_are_copied_at_once(bench, fal, subject,
                                                                                         object_store):
    market, url = fal
    market.reset(TrainingScript(polls=3))
    supervisor, announced = bench.supervisor({"fal-trainer": fal_trainer(url)})
    row = await bench.identity("fal-trainer", subject)
    await supervisor.drive(await bench.claimed(supervisor, row))
    [trained] = announced.of(IdentityTrained)
    [training] = market.trainings.values()
    body = training.body
    assert body["trigger_word"] == subject.trigger_word and body["steps"] == 1000 and body["is_style"] is False
    # The photos went as one zip uploaded to fal's storage, kept there as long as the training may run.
    [(file_id, uploaded)] = market.uploads().items()
    assert body["images_data_url"] == f"{url}/files/uploaded/{file_id}/photos.zip" and market.inline() == []
    assert uploaded.headers["x-fal-object-lifecycle-preference"] == '{"expiration_duration_seconds": 3600}'
    with zipfile.ZipFile(io.BytesIO(uploaded.data)) as archive:
        assert sorted(archive.read(name) for name in archive.namelist()) == sorted(astronaut_photos())
    assert training.headers["x-fal-object-lifecycle-preference"] == '{"expiration_duration_seconds": 86400}'
    assert training.polls == 4
    assert await object_store.get(object_store.internal_bucket, trained.weights_key) == training.lora
    assert trained.cost_micro_usd == 2_000_000 and trained.weights_size_bytes == len(training.lora)
    stored = await bench.row(row.identity_id)
    assert stored["state"] == "trained" and stored["handle"]["id"] == training.id


async def test_a_fal_training_polled_through_202s_429s_and_503s_is_one_training_trained(bench, fal, subject):
    """fal's queue answers 202 while a request is queued or running; a 429 and an ingress 503 in
    between say nothing about the training: it is polled again, never canceled."""
    market, url = fal
    market.reset(TrainingScript(polls=4, poll_faults=[429, 503, 429]))
    supervisor, announced = bench.supervisor({"fal-trainer": fal_trainer(url)})
    row = await bench.identity("fal-trainer", subject)
    await supervisor.drive(await bench.claimed(supervisor, row))
    [training] = market.trainings.values()
    assert not announced.of(IdentityTrainingFailed), announced.of(IdentityTrainingFailed)
    assert len(announced.of(IdentityTrained)) == 1 and not training.canceled and training.polls == 5
    assert (await bench.row(row.identity_id))["state"] == "trained"


async def test_the_portrait_trainer_takes_its_trigger_phrase(bench, fal, subject):
    market, url = fal
    market.reset()
    entry = fal_trainer(url, "fal-ai/flux-lora-portrait-trainer", trigger_field="trigger_phrase",
                        steps={"default": 2500}, fixed={"subject_crop": True})
    supervisor, announced = bench.supervisor({"portrait-trainer": entry})
    await supervisor.drive(await bench.claimed(supervisor, await bench.identity("portrait-trainer", subject)))
    [training] = market.trainings.values()
    assert training.body["trigger_phrase"] == subject.trigger_word and training.body["steps"] == 2500
    assert len(announced.of(IdentityTrained)) == 1


async def test_a_failed_training_is_announced_as_the_providers_failure(bench, fal, subject, object_store):
    market, url = fal
    market.reset(TrainingScript(polls=1, fails=True))
    supervisor, announced = bench.supervisor({"fal-trainer": fal_trainer(url)})
    row = await bench.identity("fal-trainer", subject)
    await supervisor.drive(await bench.claimed(supervisor, row))
    [failed] = announced.of(IdentityTrainingFailed)
    assert failed.failure_code == "training_failed" and not failed.tenant_fault and failed.job_id == row.job_id
    assert (await bench.row(row.identity_id))["state"] == "failed" and not announced.of(IdentityTrained)


async def test_a_trainer_that_refuses_its_input_fails_the_training_through_no_fault_of_the_tenant(bench, fal, subject):
    """The photos were screened and accepted here: what a trainer refuses (fal's 422) is between
    the platform and the provider, never the tenant's to pay for."""
    market, url = fal
    market.reset()
    supervisor, announced = bench.supervisor({"fal-trainer": fal_trainer(url, fixed={"is_style": "no"})})
    await supervisor.drive(await bench.claimed(supervisor, await bench.identity("fal-trainer", subject)))
    [failed] = announced.of(IdentityTrainingFailed)
    assert failed.failure_code == "training_refused" and "HTTP 422" in failed.reason and not failed.tenant_fault


async def test_weights_whose_url_expired_are_asked_again_and_copied(bench, fal, subject, object_store, keys):
    market, url = fal
    market.reset(TrainingScript(polls=1, weights="expire_once"))
    supervisor, announced = bench.supervisor({"fal-trainer": fal_trainer(url)})
    await supervisor.drive(await bench.claimed(supervisor, await bench.identity("fal-trainer", subject)))
    [training] = market.trainings.values()
    assert len(announced.of(IdentityTrained)) == 1 and market.downloads[training.id] == 2
    market.reset(TrainingScript(polls=1, weights="expire_always"))
    another = await sealed_subject(object_store, keys[0], astronaut_photos()[:6])
    await supervisor.drive(await bench.claimed(supervisor, await bench.identity("fal-trainer", another)))
    [failed] = announced.of(IdentityTrainingFailed)
    assert "expired before they were copied" in failed.reason and len(market.trainings) == 1


async def test_a_replicate_training_reads_its_photos_from_a_file_uploaded_to_replicate_deleted_once_it_ends(
        bench, replicate, object_store, keys):
    """The photos' zip goes through Replicate's files API, `input_images` is the file's URL (as the
    recorded trainings' input is a file Replicate hosts), never a data: URI echoed in every answer
    and callback; the file is deleted once the training ends, succeeded or failed."""
    market, url = replicate
    for fails in (False, True):
        market.reset(TrainingScript(polls=2, fails=fails, poll_faults=[429, 503]))
        subject = await sealed_subject(object_store, keys[0], astronaut_photos())
        supervisor, announced = bench.supervisor({"replicate-trainer": replicate_trainer(url)})
        await supervisor.drive(await bench.claimed(supervisor, await bench.identity("replicate-trainer", subject)))
        [training] = market.trainings.values()
        [file_id] = market.deleted_files
        assert training.body["input"]["input_images"] == f"{url}/v1/files/{file_id}" and market.inline() == []
        assert market.uploads() == {} and market.uploaded == [file_id] and not training.canceled
        assert len(announced.of(IdentityTrainingFailed if fails else IdentityTrained)) == 1


async def test_weights_that_do_not_hold_together_fail_the_training_and_nothing_is_kept(bench, fal, subject, object_store):
    market, url = fal
    market.reset(TrainingScript(polls=1, weights="cut_short"))
    supervisor, announced = bench.supervisor({"fal-trainer": fal_trainer(url)})
    row = await bench.identity("fal-trainer", subject)
    await supervisor.drive(await bench.claimed(supervisor, row))
    [failed] = announced.of(IdentityTrainingFailed)
    assert "neither safetensors" in failed.reason and not failed.tenant_fault and not announced.of(IdentityTrained)
    assert (await bench.row(row.identity_id))["weights_key"] is None
    assert await object_store.list_objects(object_store.internal_bucket, f"identities/{row.tenant_id}/{row.subject_id}/") == []


async def test_forty_minutes_of_polls_on_a_simulated_clock_end_in_one_training(bench, replicate, subject):
    market, url = replicate
    market.reset(TrainingScript(polls=160))  # 160 polls 15 s apart: 40 minutes
    clock = ManualClock()
    supervisor, announced = bench.supervisor({"replicate-trainer": replicate_trainer(url, trainer={
        "poll_interval_s": 15})}, clock=clock)
    row = await bench.identity("replicate-trainer", subject)
    await supervisor.drive(await bench.claimed(supervisor, row))
    [training] = market.trainings.values()
    assert training.polls == 161 and 2400 <= clock.now() < 2400 + 15 + 1
    [trained] = announced.of(IdentityTrained)
    stored = await bench.row(row.identity_id)
    assert stored["provider_version"].startswith("genline/identities:")
    assert stored["weights_sha256"] == trained.weights_sha256 and trained.weights_size_bytes == len(training.lora)


async def test_a_training_past_its_time_is_canceled_at_the_provider_and_failed(bench, replicate, subject):
    market, url = replicate
    market.reset(TrainingScript(polls=10_000))
    clock = ManualClock()
    supervisor, announced = bench.supervisor({"replicate-trainer": replicate_trainer(url, trainer={
        "poll_interval_s": 15, "timeout_s": 1800, "expected_s": 1200})}, clock=clock)
    await supervisor.drive(await bench.claimed(supervisor, await bench.identity("replicate-trainer", subject)))
    [training] = market.trainings.values()
    [failed] = announced.of(IdentityTrainingFailed)
    assert failed.failure_code == "training_timeout" and training.canceled and 1800 <= clock.now() < 1830


async def test_a_destination_that_does_not_exist_fails_the_training_for_an_operator(bench, replicate, subject):
    market, url = replicate
    market.reset()
    entry = replicate_trainer(url, trainer={"destination": "genline/missing"})
    supervisor, announced = bench.supervisor({"replicate-trainer": entry})
    await supervisor.drive(await bench.claimed(supervisor, await bench.identity("replicate-trainer", subject)))
    [failed] = announced.of(IdentityTrainingFailed)
    assert "does not exist" in failed.reason and not failed.tenant_fault and market.trainings == {}


@pytest.mark.parametrize("callbacks, interval_s", [(2, 30.0), (0, 0.2)], ids=["a callback twice", "no callback"])
async def test_callbacks_twice_or_never_end_in_one_training(bench, replicate, subject, callbacks, interval_s):
    market, url = replicate
    # Each callback the whole training: its input echoed, its 6,000 steps' progress logged (560 KB).
    market.reset(TrainingScript(latency_s=0.5, webhooks=callbacks, log_lines=6000))
    async with serving_here(Starlette()) as router_url:
        entry = replicate_trainer(url, webhooks={"url": f"{router_url}/webhooks/providers", "secret": "HOOKS",
                                                 "poll_interval_s": interval_s}, trainer={"poll_interval_s": 30})
        registry = parse_registry({"providers": {"replicate-trainer": entry}})
        context = ProviderContext(client=bench.client, webhooks=bench.inbox)
        adapters = build_providers(registry, {"STUB_KEY": SECRET, "HOOKS": WEBHOOK_SECRET}, context=context)
        route = provider_webhook_route(adapters, bench.inbox)
        async with serving_here(Starlette(routes=[route])) as hooks_url:
            entry["webhooks"]["url"] = f"{hooks_url}/webhooks/providers"
            supervisor, announced = bench.supervisor({"replicate-trainer": entry})
            row = await bench.identity("replicate-trainer", subject)
            driving = asyncio.create_task(supervisor.drive(await bench.claimed(supervisor, row)))
            for _ in range(200):  # each callback answered before the training is done with
                if len(market.callbacks) == callbacks or driving.done():
                    break
                await asyncio.sleep(0.1)
            assert market.callbacks == [204] * callbacks, "every callback is taken at the size Replicate sends it"
            await asyncio.wait_for(driving, 20)
            await asyncio.sleep(0.3)  # a late second callback finds the training done
    [training] = market.trainings.values()
    assert training.body["webhook"] == f"{hooks_url}/webhooks/providers/replicate-trainer"
    assert training.body["webhook_events_filter"] == ["completed"]
    assert len(announced.of(IdentityTrained)) == 1 and market.callbacks == [204] * callbacks and market.inline() == []
    if callbacks:
        assert training.polls <= 3  # woken by the callback, not by its 30 s poll


async def test_a_router_that_dies_mid_training_leaves_it_to_another_that_resumes_it(bench, replicate, subject):
    market, url = replicate
    market.reset(TrainingScript(polls=40))
    entries = {"replicate-trainer": replicate_trainer(url, trainer={"poll_interval_s": 0.05})}
    first, _ = bench.supervisor(entries, lease_s=30.0)
    row = await bench.identity("replicate-trainer", subject)
    driving = asyncio.create_task(first.drive(await bench.claimed(first, row)))
    while not market.trainings or next(iter(market.trainings.values())).polls < 3:
        await asyncio.sleep(0.02)
    driving.cancel()  # the router dies: its claim is not given back
    await asyncio.gather(driving, return_exceptions=True)
    second, announced = bench.supervisor(entries, lease_s=30.0)
    async with bench.pool.connection() as conn:
        assert await store.claim_identities(conn, second._lease, limit=10) == []  # held until the claim lapses
        await conn.execute("UPDATE identities SET claimed_until = now() - interval '1 second'")  # 30 s later
    await second.drive(await bench.claimed(second, row))
    [training] = market.trainings.values()
    assert len(announced.of(IdentityTrained)) == 1 and not training.canceled
    assert training.polls > 40


async def test_an_erased_identity_leaves_nothing_in_the_bucket_nor_its_version_at_replicate(bench, replicate, subject,
                                                                                            object_store):
    market, url = replicate
    market.reset()
    supervisor, announced = bench.supervisor({"replicate-trainer": replicate_trainer(url)})
    row = await bench.identity("replicate-trainer", subject)
    await supervisor.drive(await bench.claimed(supervisor, row))
    [trained] = announced.of(IdentityTrained)
    for _ in range(2):  # erased twice: the second finds nothing more to do
        async with bench.pool.connection() as conn:
            erased = await store.erase_identities(conn, row.tenant_id, subject_id=row.subject_id)
        for left in erased:
            await supervisor.drive(await bench.claimed(supervisor, left))
    stored = await bench.row(row.identity_id)
    assert (stored["state"], stored["cleanup"], stored["weights_key"]) == ("erased", None, None)
    assert market.deleted_versions == [stored["provider_version"]]
    with pytest.raises(StorageError):
        await object_store.get(object_store.internal_bucket, trained.weights_key)
