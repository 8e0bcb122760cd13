"""A customer's face trained and carried at the hosted providers, through the running services on
the real broker, PostgreSQL and S3, each path on a stack whose only providers are that
provider's, against simulators of its published API (tests/router/identity_apis.py: inputs
checked against the published schemas, answers in the published shapes, a trainer that learns
the face from the photos it downloads and models that paint it):

* fal: its queue trainer (`fal-ai/flux-lora-fast-training`) then `fal-ai/flux-lora` with the
  LoRA by URL; PuLID (`fal-ai/flux-pulid`) for an order by reference. Polls answered 202 while
  queued or running, 429s and ingress 503s among them; the training's end called back twice.
* Replicate: a training of `ostris/flux-dev-lora-trainer` pushing a version, then
  `black-forest-labs/flux-dev-lora` given that version as cog-flux's loader reads one; polls
  answered 429 and 503; no callback ever comes, so polling finds the end.

On each: an order of 12 pictures across the six styles from 48 candidates is delivered, its one
training paid once and the balance exact; the same with the training failing at the provider
costs nothing for it, and goes on by reference where the provider has a reference model (the
job's log says so); a second order of that subject is planned again, never refused, and
delivered. No request to a provider carries a
photo inline: each went as a file the provider keeps."""

import asyncio
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from genline_stack.demo_subject import make_subject
from genline_stack.embedded import create_topics
from genline_stack.fleet import ServiceFleet
from services.common.contracts import all_topics
from services.common.quality.fingerprints import NEAR_DUPLICATE_BITS, distance
from tests.e2e.conftest import Tenant, make_tenant
from tests.router.identity_apis import (
    WEBHOOK_SECRET,
    IdentityMarket,
    TrainingScript,
    fal_identity_app,
    replicate_identity_app,
)
from tests.router.market import SECRET
from tests.router.stubs import serve

IMAGES, CANDIDATES, PRICE, TRAINING = 12, 48, 25, 300  # subject-headshots: 25 credits a picture; the training line
CREDITS = 2_000
SIZE = {"style": "image_size", "field": "image_size", "multiple_of": 8}
TIMEOUTS = {"submit_s": 10, "overall_s": 120, "poll_backoff_max_s": 0.5}
# The LoRA's pass-rate prior, as strong as a hundred verdicts. An order learns from the verdicts
# of the orders before it in the module (up to 48 candidates each): at strength 4 the first
# order's LoRA candidates passing at about PuLID's prior rate (0.6) or under made the next
# order's LoRA the dearer way, so it went by reference without training (a loaded suite met
# it: the failed-training test's order never trained). A hundred holds the LoRA the cheaper way
# (above 0.65 after any order that delivered its twelve), as the prices below mean it to be.
LORA_PRIOR = {"lora": {"mean": 0.85, "strength": 100}}


def fal_providers(url: str, router_url: str) -> dict:
    """fal's trainer, its FLUX LoRA model and PuLID, as the guide declares them, at the simulator.
    A training (0.24 USD) spread over 48 candidates makes the LoRA the cheaper way per passing
    image; the prices leave an order by reference room for a rework within its budget."""
    options = {"storage_url": url, "jwks_url": f"{url}/.well-known/jwks.json"}
    common = {"adapter": "fal", "endpoint": url, "credentials": "STUB_KEY", "options": options, "timeouts": TIMEOUTS,
              "poll_interval_s": 0.2}
    trainer_model = {"name": "flux-lora-fast-training", "version": "2024-08", "remote_id": "fal-ai/flux-lora-fast-training"}
    return {
        "fal-lora-trainer": common | {
            "models": [trainer_model], "capabilities": {"stages": []}, "price": {}, "concurrency": 2,
            "webhooks": {"url": f"{router_url}/webhooks/providers", "poll_interval_s": 1.0},
            "trainer": {"model": trainer_model, "base": "flux-dev", "images": {"field": "images_data_url", "min": 4},
                        "fixed": {"is_style": False, "create_masks": True}, "price": {"per_run_micro_usd": 240_000},
                        "expected_s": 5, "timeout_s": 600, "poll_interval_s": 0.3}},
        "fal-flux-lora": common | {
            "models": [{"name": "flux-lora", "version": "2024-08", "remote_id": "fal-ai/flux-lora", "inputs": {
                "size": SIZE, "count": {"field": "num_images", "max": 4}, "seed": {"field": "seed"},
                "fixed": {"output_format": "jpeg"},
                "identity": {"lora": {"field": "loras", "scale": 1.0, "base": "flux-dev"}}}}],
            "capabilities": {"max_images_per_request": 4, "identity": ["lora"], "subjects_only": True},
            "identity_pass_rate_prior": LORA_PRIOR,
            "price": {"per_megapixel_micro_usd": 20_000}, "concurrency": 8},
        "fal-flux-pulid": common | {
            "models": [{"name": "flux-pulid", "version": "1", "remote_id": "fal-ai/flux-pulid", "inputs": {
                "size": SIZE, "seed": {"field": "seed"}, "fixed": {"id_weight": 1.0},
                "identity": {"reference": {"field": "reference_image_url"}}}}],
            "capabilities": {"max_images_per_request": 1, "identity": ["reference"], "subjects_only": True},
            "identity_pass_rate_prior": {"reference": {"mean": 0.6, "strength": 4}},
            "price": {"per_megapixel_micro_usd": 25_000}, "concurrency": 8},
    }


def replicate_providers(url: str, router_url: str) -> dict:
    """Replicate's trainer and cog-flux's flux-dev-lora, which takes the version a training pushed."""
    common = {"adapter": "replicate", "endpoint": url, "credentials": "STUB_KEY", "timeouts": TIMEOUTS,
              "poll_interval_s": 0.2}
    trainer_model = {"name": "flux-dev-lora-trainer", "version": "1", "remote_id": "ostris/flux-dev-lora-trainer:abc"}
    return {
        "replicate-lora-trainer": common | {
            "models": [trainer_model], "capabilities": {"stages": []}, "price": {}, "concurrency": 2,
            "webhooks": {"url": f"{router_url}/webhooks/providers", "secret": "HOOKS", "poll_interval_s": 1.0},
            "trainer": {"model": trainer_model, "base": "flux-dev", "destination": "genline/identities",
                        "images": {"field": "input_images"}, "steps": {"default": 1000, "min": 3, "max": 6000},
                        "fixed": {"autocaption": True}, "price": {"per_step_micro_usd": 480},
                        "weights": "weights", "expected_s": 5, "timeout_s": 600, "poll_interval_s": 0.3}},
        "replicate-flux-dev-lora": common | {
            "models": [{"name": "flux-dev-lora", "version": "1", "remote_id": "black-forest-labs/flux-dev-lora",
                        "inputs": {
                            "size": {"style": "aspect_ratio", "field": "aspect_ratio", "ratios": ["1:1", "3:4", "4:3"],
                                     "megapixels_field": "megapixels", "megapixels": ["1", "0.25"], "multiple_of": 16},
                            "count": {"field": "num_outputs", "max": 4}, "seed": {"field": "seed"},
                            "fixed": {"output_format": "png"},
                            "identity": {"lora": {"field": "lora_weights", "style": "url", "scale_field": "lora_scale",
                                                  "scale": 1.0, "base": "flux-dev", "link": "replicate_version"}}}}],
            "capabilities": {"max_images_per_request": 4, "identity": ["lora"], "subjects_only": True},
            "identity_pass_rate_prior": LORA_PRIOR,
            "price": {"per_image_micro_usd": 30_000}, "concurrency": 8},
    }


@dataclass
class ProviderPath:
    """One provider's path: its simulator's state and the stack that routes to it alone."""

    market: IdentityMarket
    fleet: ServiceFleet
    endpoints: object

    def tenant(self) -> Tenant:
        return make_tenant(self.endpoints, self.fleet, CREDITS)


@contextmanager
def stack_of(endpoints, directory: Path, name: str, app, providers) -> Iterator[ProviderPath]:
    """The five services on topics and schemas of their own, whose only providers are `providers`
    (built from the simulator's URL and the router's) at the simulator `app` serves."""
    market = IdentityMarket()
    with ExitStack() as stack:
        url = stack.enter_context(serve(app(market)))
        namespace = f"{name}{uuid.uuid4().hex[:6]}"
        asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(namespace)))
        registry = directory / "providers.yaml"
        fleet = ServiceFleet(endpoints=endpoints, log_dir=directory / "logs", namespace=namespace, extra_env={
            "GENLINE_ENVIRONMENT": "test", "GENLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "GENLINE_PROVIDERS_PATH": str(registry),
            "GENLINE_PROVIDER_SECRETS": json.dumps({"STUB_KEY": SECRET, "HOOKS": WEBHOOK_SECRET}),
            "GENLINE_TRAINING_LOOK_INTERVAL_S": "0.3", "GENLINE_IDENTITY_WAIT_S": "1"})
        registry.write_text(yaml.safe_dump({"providers": providers(url, fleet.url("router"))}))
        try:
            fleet.start_all()
            yield ProviderPath(market, fleet, endpoints)
        finally:
            fleet.stop_all()


@pytest.fixture(scope="module")
def fal(endpoints, tmp_path_factory):
    with stack_of(endpoints, tmp_path_factory.mktemp("fal"), "falid", fal_identity_app, fal_providers) as path:
        yield path


@pytest.fixture(scope="module")
def replicate(endpoints, tmp_path_factory):
    with stack_of(endpoints, tmp_path_factory.mktemp("replicate"), "repid", replicate_identity_app,
                  replicate_providers) as path:
        yield path


def ordered(tenant: Tenant, subject: dict, **fields) -> dict:
    job_id = tenant.submit(prompt="professional headshot", template="subject-headshots", subject=subject["id"],
                           images=IMAGES, candidates=CANDIDATES, **fields)
    return tenant.wait_settled([job_id], timeout_s=600)[job_id]


def delivered_across_the_styles(job: dict) -> int:
    """The pictures delivered (their count): the 12 asked for, each the subject, in every one of
    the six styles where one of its candidates passed, each style's share of two where its
    candidates passed (a style short of them filled from the others' spares, up to 12: the
    order's 48 candidates are all it may generate, and a style may have no passing one). A style
    ships fewer than its passing candidates only where they are alike (the scorer measures
    on past a near-duplicate, but a style may have no second different picture); an order
    short of 12 is partial, and leaves out no passing picture unlike every one it shipped (a
    style with one passing picture whose shortfall no other style's spare could fill)."""
    passing = [s for s in job["scores"] if s["passed"]]
    by_style = Counter(s["style"] for s in passing)
    chosen = [s for s in job["scores"] if s["index"] in job["selected"]]
    shown = Counter(s["style"] for s in chosen)
    assert job["state"] in ("succeeded", "partially_succeeded"), f"{job['state']}: {job.get('failure')}; {by_style}"
    assert all(s["passed"] and s["dimensions"]["identity"]["value"] < 0.6 for s in chosen)
    assert len(job["styles"]) == 6 and set(shown) <= set(job["styles"]), shown
    assert all(shown[style] for style in job["styles"] if by_style[style]), (shown, by_style)
    short = [style for style in job["styles"] if shown[style] < min(IMAGES // 6, by_style[style])]
    assert all(alike(s for s in passing if s["style"] == style) for style in short), (shown, by_style)
    assert len(job["outputs"]) == len(chosen) <= IMAGES, (shown, by_style)
    assert (job["state"] == "succeeded") == (len(chosen) == IMAGES), (job["state"], len(chosen))
    left_out = [s for s in passing if s["index"] not in job["selected"]]
    assert len(chosen) == IMAGES or all(any(alike([s, c]) for c in chosen) for s in left_out), (shown, by_style)
    return len(chosen)


def alike(scores) -> bool:
    """Whether two of these candidates are near-duplicates (the scorer's fingerprint distance)."""
    return any(distance(a["fingerprint"], b["fingerprint"]) <= NEAR_DUPLICATE_BITS
               for a, b in itertools.combinations(list(scores), 2))


def log_of(tenant: Tenant, job_id: str) -> list[dict]:
    return tenant.http.get(f"/v1/jobs/{job_id}/events", params={"limit": 500}).json()["data"]


def providers_used(job: dict) -> set[str]:
    return {s["provider"] for s in job["scores"]}


# ---- fal ----------------------------------------------------------------------------------


def test_fal_trains_the_face_paints_it_with_flux_lora_and_the_training_is_paid_once(fal):
    fal.market.reset(TrainingScript(latency_s=4.0, webhooks=2, poll_faults=[429, 503, 429],
                                    model_poll_faults=[503, 429]))
    tenant = fal.tenant()
    subject = make_subject(tenant.http, lambda _: None)
    job = ordered(tenant, subject)
    delivered = delivered_across_the_styles(job)
    assert job["subject"]["training"] == "trained" and job["subject"]["identity"]["mode"] == "lora"
    assert job["billing"]["training"]["state"] == "charged" and job["billing"]["charged"] == delivered * PRICE
    spent = delivered * PRICE + TRAINING
    assert tenant.balance() == {"posted": CREDITS - spent, "pending": 0, "available": CREDITS - spent}
    assert providers_used(job) == {"fal-flux-lora"}
    [training] = fal.market.trainings.values()
    assert not training.canceled and fal.market.callbacks == [204, 204]
    assert fal.market.inline() == [], "a photo went inline"
    assert all(made["body"]["loras"][0]["path"].split("?")[0].endswith(".safetensors") for made in fal.market.images)


def test_a_fal_training_that_fails_costs_nothing_the_order_goes_by_reference_and_the_next_is_planned_anew(fal):
    fal.market.reset(TrainingScript(latency_s=2.0, fails=True, webhooks=0))
    tenant = fal.tenant()
    subject = make_subject(tenant.http, lambda _: None)
    job = ordered(tenant, subject)
    delivered = delivered_across_the_styles(job)
    assert job["subject"]["training"] == "failed" and job["subject"]["identity"]["mode"] == "reference", job["subject"]
    assert job["billing"]["training"]["state"] == "released" and job["billing"]["training"]["charged"] == 0, job["billing"]
    assert providers_used(job) == {"fal-flux-pulid"}, providers_used(job)
    assert tenant.balance() == {"posted": CREDITS - delivered * PRICE, "pending": 0,
                                "available": CREDITS - delivered * PRICE}
    told = [(e["type"], e["payload"].get("mode")) for e in log_of(tenant, job["id"]) if e["type"].startswith("identity.")]
    assert told == [("identity.planned", "lora"), ("identity.training_failed", None), ("identity.planned", "reference")], told

    # The next order is planned again (training again or by reference, whichever is cheaper per
    # passing image by now): never refused; its line charged only if it trained.
    fal.market.reset(TrainingScript(latency_s=2.0, webhooks=1))
    again = ordered(tenant, subject)
    delivered += delivered_across_the_styles(again)
    trained = again["subject"]["training"] == "trained"
    assert again["billing"]["training"]["state"] == ("charged" if trained else "released")
    spent = delivered * PRICE + (TRAINING if trained else 0)
    assert tenant.balance() == {"posted": CREDITS - spent, "pending": 0, "available": CREDITS - spent}


def test_pulid_carries_the_face_by_reference_from_photos_uploaded_once_and_trains_nothing(fal):
    fal.market.reset(TrainingScript(model_poll_faults=[429]))
    tenant = fal.tenant()
    subject = make_subject(tenant.http, lambda _: None)
    job = ordered(tenant, subject, identity="reference")
    delivered = delivered_across_the_styles(job)
    assert job["subject"]["identity"]["mode"] == "reference" and providers_used(job) == {"fal-flux-pulid"}
    assert job["billing"]["training"] is None, "an order by reference holds no training line"
    assert tenant.balance()["posted"] == CREDITS - delivered * PRICE and fal.market.trainings == {}
    sent = {made["body"]["reference_image_url"] for made in fal.market.images}
    assert len(fal.market.uploads()) == subject["photos_accepted"] and len(sent) == subject["photos_accepted"]
    assert fal.market.inline() == []


# ---- Replicate ----------------------------------------------------------------------------


def test_replicate_trains_a_version_flux_dev_lora_runs_it_and_the_training_is_paid_once(replicate):
    replicate.market.reset(TrainingScript(latency_s=3.0, webhooks=0, poll_faults=[429, 503],
                                          model_poll_faults=[429, 503]))
    tenant = replicate.tenant()
    subject = make_subject(tenant.http, lambda _: None)
    job = ordered(tenant, subject)
    delivered = delivered_across_the_styles(job)
    assert job["subject"]["training"] == "trained" and job["billing"]["training"]["state"] == "charged"
    spent = delivered * PRICE + TRAINING
    assert tenant.balance() == {"posted": CREDITS - spent, "pending": 0, "available": CREDITS - spent}
    [training] = replicate.market.trainings.values()
    [version] = replicate.market.versions["genline/identities"]
    assert {made["body"]["lora_weights"] for made in replicate.market.images} == {f"genline/identities/{version}"}
    assert replicate.market.callbacks == [] and replicate.market.inline() == []
    # Its photos went as one file, deleted once the training ended.
    assert replicate.market.uploads() == {} and replicate.market.deleted_files == replicate.market.uploaded
    assert len(replicate.market.uploaded) == 1


def test_a_replicate_training_that_fails_costs_nothing_and_the_next_order_trains_again(replicate):
    replicate.market.reset(TrainingScript(latency_s=2.0, fails=True, webhooks=2))
    tenant = replicate.tenant()
    subject = make_subject(tenant.http, lambda _: None)
    job = ordered(tenant, subject)
    # No model here takes reference photos: the order fails, and nothing is charged.
    assert job["state"] == "failed" and job["billing"]["charged"] == 0
    assert job["billing"]["training"]["state"] == "released"
    assert tenant.balance() == {"posted": CREDITS, "pending": 0, "available": CREDITS}
    assert replicate.market.callbacks == [204, 204]

    replicate.market.reset(TrainingScript(latency_s=2.0, webhooks=1))
    again = ordered(tenant, subject)
    delivered = delivered_across_the_styles(again)
    assert again["subject"]["training"] == "trained" and again["billing"]["training"]["state"] == "charged"
    spent = delivered * PRICE + TRAINING
    assert tenant.balance() == {"posted": CREDITS - spent, "pending": 0, "available": CREDITS - spent}
