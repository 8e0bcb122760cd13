"""Simulators of the providers' published APIs: real HTTP servers on 127.0.0.1.

Each app answers as its provider documents it (shapes from tests/router/fixtures/, whose
README says where each came from) and checks requests as the provider would (unknown
fields, sizes a model cannot make, a missing key: the provider's error, not ours). One
`Market` holds a simulator's state and a `Script` steers it (market.py); the apps are in
queue_apis.py (Replicate, fal), comfyui_api.py and image_apis.py (OpenAI and compatible
servers, Black Forest Labs, Stability AI, Runware).

`serve(app)` runs an app with uvicorn in a thread and yields its base URL; `Provider`
bundles a running simulator with its market, and `entry()` gives its providers.yaml entry.
"""

import copy
import functools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from tests.router.comfyui_api import comfyui_app
from tests.router.image_apis import bfl_app, openai_app, runware_app, stability_app
from tests.router.market import SECRET, Market, foreign_app
from tests.router.queue_apis import fal_app, replicate_app

APPS = {"replicate": replicate_app, "fal": fal_app, "comfyui": comfyui_app, "openai": openai_app,
        "openai-compatible": functools.partial(openai_app, compatible=True), "bfl": bfl_app,
        "stability": stability_app, "runware": runware_app}


# ---- serving ------------------------------------------------------------------------------


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run `app` on a free port of 127.0.0.1 in a thread; yields its base URL."""
    # With the protocol named, asyncio sets TCP_NODELAY on accepted connections; without
    # it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("simulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass(frozen=True)
class Provider:
    """A running simulator: its adapter's name, base URL and market."""

    adapter: str
    url: str
    market: Market


# The names scenarios written before the simulators use, as above.
Stub = Provider
StubMarket = Market
STUB_SECRET = SECRET


@contextmanager
def simulated(adapter: str, **app_options) -> Iterator[Provider]:
    """A simulator of `adapter`'s API and a foreign host beside it, sharing one market."""
    market = Market()
    with serve(foreign_app(market)) as foreign, serve(APPS[adapter](market, **app_options)) as url:
        market.foreign_url = foreign
        yield Provider(adapter, url, market)


# ---- registry entries over the simulators -------------------------------------------------

# Each simulated API's model, with the inputs that model takes there.
MODELS: dict[str, dict] = {
    "replicate": {"remote_id": "black-forest-labs/flux-schnell", "inputs": {
        "size": {"style": "aspect_ratio", "field": "aspect_ratio", "ratios": ["1:1", "16:9", "9:16", "4:3", "3:4"],
                 "megapixels_field": "megapixels", "megapixels": ["1", "0.25"], "multiple_of": 16},
        "count": {"field": "num_outputs", "max": 4}, "seed": {"field": "seed"}, "fixed": {"output_format": "png"}}},
    "fal": {"remote_id": "fal-ai/flux/dev"},
    "comfyui": {"remote_id": "sd_xl_base_1.0.safetensors"},
    "openai": {"remote_id": "gpt-image-1", "inputs": {
        "size": {"style": "size", "field": "size", "sizes": ["1024x1024", "1536x1024", "1024x1536"]},
        "count": {"field": "n", "max": 4}, "fixed": {"quality": "low"}}},
    "openai-compatible": {"remote_id": "black-forest-labs/FLUX.1-schnell", "inputs": {
        "size": {"multiple_of": 16}, "count": {"field": "n", "max": 4}, "seed": {"field": "seed"},
        "steps": {"field": "steps", "default": 4}, "fixed": {"response_format": "url"}}},
    "bfl": {"remote_id": "flux-pro-1.1", "inputs": {"size": {"multiple_of": 32}, "seed": {"field": "seed"},
                                                    "fixed": {"output_format": "png"}}},
    "stability": {"remote_id": "core", "inputs": {
        "size": {"style": "aspect_ratio", "field": "aspect_ratio", "ratios": ["1:1", "16:9", "9:16"],
                 "area_megapixels": 1.0, "multiple_of": 64},
        "seed": {"field": "seed", "max": 4294967294}, "negative_prompt": {"field": "negative_prompt"},
        "fixed": {"output_format": "png"}}},
    "runware": {"remote_id": "runware:100@1", "inputs": {
        "prompt_field": "positivePrompt", "size": {"multiple_of": 64}, "count": {"field": "numberResults", "max": 4},
        "seed": {"field": "seed"}, "steps": {"field": "steps", "default": 4}}},
}
# The size each simulated model makes well: the job size conformance tests ask for.
SIZES = {"replicate": (1024, 1024), "openai": (1024, 1024), "stability": (1024, 1024), "bfl": (256, 256)}
NEEDS_KEY = {"replicate", "fal", "openai", "openai-compatible", "bfl", "stability", "runware"}


# Models that take the adapter's usual inputs (any size: the engine's tests paint small images).
PLAIN = {"replicate": {"remote_id": "v-abc"}, "fal": {"remote_id": "fal-ai/stub/dev"},
         "comfyui": {"remote_id": "stub.safetensors"}}


def entry(provider: Provider, *, price: int = 10_000, concurrency: int = 4, max_batch: int = 4,
          overall_s: float = 2.0, submit_s: float | None = None, prior: float = 0.8, versions: tuple[str, ...] = ("1",), latency_s: float = 0.05,
          reject_blank: bool = True, model: dict | None = None, **extra) -> dict:
    """A providers.yaml entry for a simulator (a plain dict, as it comes from YAML)."""
    model = model if model is not None else MODELS[provider.adapter]
    return {
        "adapter": provider.adapter,
        "endpoint": provider.url,
        "credentials": "STUB_KEY" if provider.adapter in NEEDS_KEY else None,
        "models": [{"name": "stub-model", "version": v, **copy.deepcopy(model)} for v in versions],
        "capabilities": {"min_side": 16, "max_images_per_request": max_batch},
        "price": {"per_image_micro_usd": price},
        "concurrency": concurrency,
        "timeouts": {"submit_s": submit_s or min(2.0, overall_s), "overall_s": overall_s, "poll_backoff_max_s": 0.2},
        "latency": {"base_s": latency_s, "per_image_s": 0.0},
        "pass_rate_prior": {"mean": prior, "strength": 4},
        "poll_interval_s": 0.02,
        "outputs": {"reject_blank": reject_blank, "max_bytes": 512 * 1024},
        **extra,
    }


def stub_provider(stub: Provider, **options) -> dict:
    """`entry()` for a model of the adapter's usual inputs, letting blank images through: the
    scenarios built on it are about routing and the scorer."""
    return entry(stub, **({"reject_blank": False, "model": PLAIN[stub.adapter]} | options))
