"""Providers' callbacks: Replicate's Standard Webhooks signature and fal's Ed25519 signature
are verified (the reference signer signs here), the route answers 204, 401 or 404, and a
verified callback wakes the poller of its job, which polls at once instead of waiting out
its polling interval."""

import asyncio
import base64
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.router.providers.base import ProviderContext
from services.router.providers.factory import build_providers
from services.router.providers.registry import parse_registry
from services.router.providers.webhooks import (
    WebhookInbox,
    WebhookRejected,
    jwks_ed25519_keys,
    verify_fal_webhook,
    verify_standard_webhook,
)
from services.router.routes import provider_webhook_route
from tests.router.callback_signing import fal_signed, jwks_of
from tests.router.callback_signing import replicate_signed as signed_by_replicate
from tests.router.identity_apis import training_logs
from tests.router.market import SECRET, Script, fixture
from tests.router.stubs import entry, serve
from tests.router.test_conformance import request_for

SIGNING_SECRET = "whsec_" + base64.b64encode(b"replicate-signing-secret-32bytes").decode()


def replicate_signed(body: bytes, secret: str = SIGNING_SECRET, when: float | None = None) -> dict[str, str]:
    return signed_by_replicate(body, secret, when)


def test_replicate_callbacks_are_verified_as_standard_webhooks():
    body = json.dumps({"id": "p1", "status": "succeeded"}).encode()
    verify_standard_webhook(SIGNING_SECRET, replicate_signed(body), body=body)
    with pytest.raises(WebhookRejected):
        verify_standard_webhook(SIGNING_SECRET, replicate_signed(body), body=body + b" ")
    with pytest.raises(WebhookRejected):
        verify_standard_webhook(SIGNING_SECRET, replicate_signed(body, when=time.time() - 3600), body=body)
    with pytest.raises(WebhookRejected):
        verify_standard_webhook(SIGNING_SECRET, {}, body=body)


def test_fal_callbacks_are_verified_with_the_keys_of_its_jwks():
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = jwks_ed25519_keys(jwks_of(key))
    body = json.dumps({"request_id": "req-1", "status": "OK", "payload": {}}).encode()
    verify_fal_webhook(keys, fal_signed(key, body), body=body)
    with pytest.raises(WebhookRejected):
        verify_fal_webhook(keys, fal_signed(other, body), body=body)
    with pytest.raises(WebhookRejected):
        verify_fal_webhook(keys, fal_signed(key, body), body=b"{}")
    with pytest.raises(WebhookRejected):
        verify_fal_webhook(keys, fal_signed(key, body, when=time.time() - 3600), body=body)


@pytest.fixture
def fal_keys():
    """fal's JWKS document, served as fal serves it."""
    key = Ed25519PrivateKey.generate()

    async def jwks(request):
        return JSONResponse(jwks_of(key))

    with serve(Starlette(routes=[Route("/.well-known/jwks.json", jwks)])) as url:
        yield key, f"{url}/.well-known/jwks.json"


ROUTER = "http://router.test"


@pytest.fixture
async def receiver():
    """The router's callback route, over providers set in `providers`, served in the test's own
    event loop (as the router serves it in its own): a client posting to it, and the inbox."""
    inbox, providers = WebhookInbox(), {}
    app = Starlette(routes=[provider_webhook_route(providers, inbox)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ROUTER) as poster:
        yield poster, inbox, providers


def providers_with_callbacks(simulators, client, callback_url: str, inbox: WebhookInbox, jwks_url: str) -> dict:
    callbacks = {"url": f"{callback_url}/webhooks/providers", "poll_interval_s": 60}
    registry = parse_registry({"providers": {
        "replicate": entry(simulators["replicate"], overall_s=5.0,
                           webhooks=callbacks | {"secret": "REPLICATE_WEBHOOK_SECRET"}),
        "fal": entry(simulators["fal"], overall_s=5.0, webhooks=callbacks, options={"jwks_url": jwks_url}),
    }})
    context = ProviderContext(client=client, webhooks=inbox)
    return build_providers(registry, secrets={"STUB_KEY": SECRET, "REPLICATE_WEBHOOK_SECRET": SIGNING_SECRET},
                           context=context)


async def test_the_route_takes_signed_callbacks_only(simulators, client, receiver, fal_keys):
    poster, inbox, providers = receiver
    providers |= providers_with_callbacks(simulators, client, ROUTER, inbox, fal_keys[1])
    body = json.dumps({"id": "p1", "status": "succeeded"}).encode()
    taken = await poster.post("/webhooks/providers/replicate", content=body, headers=replicate_signed(body))
    forged = await poster.post("/webhooks/providers/replicate", content=body,
                               headers=replicate_signed(body, secret="whsec_QUFBQQ=="))
    unknown = await poster.post("/webhooks/providers/nobody", content=body)
    assert taken.status_code == 204
    assert forged.status_code == 401 and forged.headers["content-type"] == "application/problem+json"
    assert forged.json()["status"] == 401
    assert unknown.status_code == 404


async def test_a_callback_is_taken_at_the_size_replicate_sends_and_refused_unread_above_the_bound(
        simulators, client, receiver, fal_keys):
    """Replicate posts the whole training: its input echoed and its logs, a progress line at each
    of up to 6,000 steps. Such a callback is taken; one above the route's bound is refused with
    a problem, from its declared length, before it is read."""
    poster, inbox, providers = receiver
    providers |= providers_with_callbacks(simulators, client, ROUTER, inbox, fal_keys[1])
    training = fixture("identity/replicate_training_succeeded.json") | {
        "input": {"input_images": "https://api.replicate.com/v1/files/abc", "steps": 6000}, "logs": training_logs(6000)}
    body = json.dumps(training).encode()
    taken = await poster.post("/webhooks/providers/replicate", content=body, headers=replicate_signed(body))
    assert len(body) > 1 << 19 and taken.status_code == 204
    huge = json.dumps(training | {"logs": "x" * (9 << 20)}).encode()
    refused = await poster.post("/webhooks/providers/replicate", content=huge, headers=replicate_signed(huge))
    assert refused.status_code == 413 and refused.json()["title"] == "Content too large"


@pytest.mark.parametrize("adapter", ["replicate", "fal"])
async def test_a_callback_wakes_the_poller_long_before_its_next_poll(adapter, simulators, client, receiver, fal_keys):
    poster, inbox, providers = receiver
    providers |= providers_with_callbacks(simulators, client, ROUTER, inbox, fal_keys[1])
    simulator = simulators[adapter]
    simulator.market.reset(Script(hang=True))
    call = asyncio.create_task(providers[adapter].generate(request_for(adapter, timeout_s=5.0)))
    while not simulator.market.submissions or simulator.market.submissions[0].polls < 1:
        await asyncio.sleep(0.01)
    [job] = simulator.market.submissions
    callback = (job.envelope or {}).get("webhook") if adapter == "replicate" else None
    job.done_at = time.monotonic()  # the job ends at the provider; the next poll is a minute away
    body = json.dumps({"id": job.id, "status": "succeeded"} if adapter == "replicate"
                      else {"request_id": job.id, "status": "OK", "payload": {}}).encode()
    headers = replicate_signed(body) if adapter == "replicate" else fal_signed(fal_keys[0], body, job.id)
    answer = await poster.post(f"/webhooks/providers/{adapter}", content=body, headers=headers)
    images = await asyncio.wait_for(call, 4.0)
    assert answer.status_code == 204
    assert len(images) == 2 and job.polls == 2  # the first, and the one the callback asked for
    if adapter == "replicate":
        assert callback == f"{ROUTER}/webhooks/providers/replicate"
        assert job.envelope["webhook_events_filter"] == ["completed"]
    else:
        assert job.envelope == {"fal_webhook": f"{ROUTER}/webhooks/providers/fal"}
