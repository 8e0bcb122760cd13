"""Stub image providers: real HTTP servers on 127.0.0.1 that follow the providers' contracts.

`fal_app`, `replicate_app` and `comfyui_app` serve the fal queue API, Replicate's
predictions API and ComfyUI's /prompt + /history + /view, backed by one `StubMarket`
each. A test steers a stub through its `Behaviour` (latency, error status, 429 with
Retry-After, hanging, a concurrency ceiling) and reads back what the stub saw: every
submission, every cancellation, and which candidates (job, attempt, index) it actually
generated. Images are real PNGs from the local painter.

`serve(app)` runs an app with uvicorn in a thread and yields its base URL.
"""

import asyncio
import base64
import functools
import io
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.router.providers.painter import LocalGenerator

STUB_SECRET = "stub-secret"


@functools.cache
def _painter(side: int) -> LocalGenerator:
    return LocalGenerator(width=side, height=side, defect_rate=0)


@functools.cache
def _black_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Behaviour:
    latency_s: float = 0.05
    error_status: int | None = None
    retry_after_s: float | None = None
    hang: bool = False
    # More requests than this in progress at once get 429 (None: no ceiling).
    max_in_progress: int | None = None
    # Every n-th accepted submission hangs (0: none).
    hang_every: int = 0
    # The side of the square images it paints, and whether they come out black (still 200).
    side: int = 32
    black: bool = False
    # Whether a stage's result comes back as an MP4 video instead of an image.
    video: bool = False


@dataclass
class RemoteRequest:
    request_id: str
    candidates_key: str
    prompt: str
    seed: int
    count: int
    submitted_at: float
    done_at: float | None
    cancelled_at: float | None = None
    # A stage's input image (sent as a data: URI); its result is that image at twice the size.
    input_image: bytes | None = None
    body: dict = field(default_factory=dict)
    model: str = ""

    def finished(self, now: float) -> bool:
        return self.done_at is not None and now >= self.done_at and self.cancelled_at is None

    def generated(self) -> bool:
        """Whether the provider did (and would bill) the work: done before any cancel."""
        return self.done_at is not None and (self.cancelled_at is None or self.cancelled_at >= self.done_at) \
            and time.monotonic() >= self.done_at


@dataclass
class StubMarket:
    """The state behind one stub provider."""

    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: dict[str, RemoteRequest] = field(default_factory=dict)
    refused: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, behaviour: Behaviour | None = None) -> None:
        with self.lock:
            self.behaviour = behaviour or Behaviour()
            self.requests.clear()
            self.refused.clear()

    def refusal(self) -> Response | None:
        """The error this submission gets, if any (checked and submitted with no await between)."""
        behaviour = self.behaviour
        if behaviour.error_status is not None:
            return self._refuse(behaviour.error_status, behaviour.retry_after_s)
        if behaviour.max_in_progress is not None and self.in_progress() >= behaviour.max_in_progress:
            return self._refuse(429, behaviour.retry_after_s)
        return None

    def submit(self, candidates_key: str, prompt: str, seed: int, count: int, body: dict | None = None,
               model: str = "") -> RemoteRequest:
        now = time.monotonic()
        behaviour = self.behaviour
        with self.lock:
            nth = len(self.requests) + 1
            hangs = behaviour.hang or (behaviour.hang_every > 0 and nth % behaviour.hang_every == 0)
            request = RemoteRequest(request_id=uuid.uuid4().hex, candidates_key=candidates_key, prompt=prompt,
                                    seed=seed, count=count, submitted_at=now,
                                    done_at=None if hangs else now + behaviour.latency_s, body=body or {},
                                    input_image=_data_uri_image(body or {}), model=model)
            self.requests[request.request_id] = request
        return request

    def cancel(self, request_id: str) -> bool:
        request = self.requests.get(request_id)
        if request is None or request.finished(time.monotonic()):
            return False
        request.cancelled_at = time.monotonic()
        return True

    def in_progress(self) -> int:
        now = time.monotonic()
        return sum(1 for r in self.requests.values()
                   if r.cancelled_at is None and (r.done_at is None or now < r.done_at))

    def png(self, request_id: str, offset: int) -> bytes:
        request, behaviour = self.requests[request_id], self.behaviour
        if behaviour.black:
            return _black_png(behaviour.side)
        if request.input_image is not None:
            return _doubled_png(request.input_image)
        return _painter(behaviour.side).paint(request.prompt, request.seed + offset, 1)[0].png

    def generated_candidates(self) -> Counter:
        """How often each (job, attempt, index) was generated here."""
        counts: Counter = Counter()
        for request in self.requests.values():
            if request.generated():
                job, attempt, start, count = request.candidates_key.rsplit(":", 3)
                for index in range(int(start), int(start) + int(count)):
                    counts[(job, int(attempt), index)] += 1
        return counts

    def cancelled(self) -> list[RemoteRequest]:
        return [r for r in self.requests.values() if r.cancelled_at is not None]

    def _refuse(self, status: int, retry_after_s: float | None) -> Response:
        self.refused[status] += 1
        headers = {"Retry-After": f"{retry_after_s:g}"} if retry_after_s is not None else {}
        return JSONResponse({"detail": f"stub refuses with {status}"}, status_code=status, headers=headers)


def _data_uri_image(body: dict) -> bytes | None:
    uris = [v for v in body.values() if isinstance(v, str) and v.startswith("data:")]
    return base64.b64decode(uris[0].partition(",")[2]) if uris else None


def _doubled_png(image: bytes) -> bytes:
    with Image.open(io.BytesIO(image)) as source:
        buffer = io.BytesIO()
        source.resize((source.width * 2, source.height * 2)).save(buffer, format="PNG")
    return buffer.getvalue()


# The first bytes of an MP4 file: what an image-to-video model returns.
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def _authorised(request: Request, scheme: str) -> bool:
    return request.headers.get("authorization") == f"{scheme} {STUB_SECRET}"


def _unauthorised() -> Response:
    return JSONResponse({"detail": "unauthorised"}, status_code=401)


def _png_response(market: StubMarket, request_id: str, offset: int) -> Response:
    if request_id not in market.requests:
        return JSONResponse({"detail": "not found"}, status_code=404)
    if market.behaviour.video and market.requests[request_id].input_image is not None:
        return Response(MP4_BYTES, media_type="video/mp4")
    return Response(market.png(request_id, offset), media_type="image/png")


# ---- fal ---------------------------------------------------------------------------------


def fal_app(market: StubMarket) -> Starlette:
    async def submit(request: Request) -> Response:
        if not _authorised(request, "Key"):
            return _unauthorised()
        body = await request.json()
        if (refusal := market.refusal()) is not None:
            return refusal
        remote = market.submit(request.headers["idempotency-key"], body.get("prompt", ""), body.get("seed", 0),
                               body.get("num_images", 1), body, request.path_params["model"])
        app, base = _fal_app_id(request.path_params["model"]), str(request.base_url).rstrip("/")
        urls = f"{base}/{app}/requests/{remote.request_id}"
        return JSONResponse({"request_id": remote.request_id, "response_url": urls, "status_url": f"{urls}/status",
                             "cancel_url": f"{urls}/cancel"})

    async def status(request: Request) -> Response:
        remote = market.requests.get(request.path_params["rid"])
        if remote is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        state = "COMPLETED" if remote.finished(time.monotonic()) else "IN_PROGRESS"
        return JSONResponse({"status": state, "queue_position": 0})

    async def result(request: Request) -> Response:
        remote = market.requests.get(request.path_params["rid"])
        if remote is None or not remote.finished(time.monotonic()):
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        base = str(request.base_url).rstrip("/")
        images = [{"url": f"{base}/files/{remote.request_id}/{i}.png", "content_type": "image/png",
                   "width": 32, "height": 32} for i in range(remote.count)]
        return JSONResponse({"images": images, "seed": remote.seed, "timings": {"inference": 0.5 * remote.count}})

    async def cancel(request: Request) -> Response:
        cancelled = market.cancel(request.path_params["rid"])
        return JSONResponse({"status": "CANCELLATION_REQUESTED" if cancelled else "ALREADY_COMPLETED"},
                            status_code=202 if cancelled else 400)

    async def file(request: Request) -> Response:
        return _png_response(market, request.path_params["rid"], int(request.path_params["n"]))

    return Starlette(routes=[
        Route("/files/{rid}/{n:int}.png", file, methods=["GET"]),
        Route("/{app:path}/requests/{rid}/status", status, methods=["GET"]),
        Route("/{app:path}/requests/{rid}/cancel", cancel, methods=["PUT"]),
        Route("/{app:path}/requests/{rid}", result, methods=["GET"]),
        Route("/{model:path}", submit, methods=["POST"]),
    ])


def _fal_app_id(model: str) -> str:
    return "/".join(model.split("/")[:2])


# ---- Replicate ---------------------------------------------------------------------------


def replicate_app(market: StubMarket, known_versions: frozenset[str] = frozenset({"v-abc", "v-esrgan"})) -> Starlette:
    def prediction(request: Request, remote: RemoteRequest) -> dict:
        base = str(request.base_url).rstrip("/")
        now = time.monotonic()
        if remote.cancelled_at is not None:
            status = "canceled"
        else:
            status = "succeeded" if remote.finished(now) else "processing"
        return {
            "id": remote.request_id, "status": status,
            "output": [f"{base}/files/{remote.request_id}/{i}.png" for i in range(remote.count)]
            if status == "succeeded" else None,
            "error": None, "metrics": {"predict_time": 0.5 * remote.count} if status == "succeeded" else {},
            "urls": {"get": f"{base}/v1/predictions/{remote.request_id}",
                     "cancel": f"{base}/v1/predictions/{remote.request_id}/cancel"},
        }

    async def create(request: Request) -> Response:
        if not _authorised(request, "Bearer"):
            return _unauthorised()
        body = await request.json()
        if body.get("version") not in known_versions:
            return JSONResponse({"detail": "Invalid version or not permitted"}, status_code=422)
        if (refusal := market.refusal()) is not None:
            return refusal
        prompt_input = body["input"]
        remote = market.submit(request.headers["idempotency-key"], prompt_input.get("prompt", ""),
                               prompt_input.get("seed", 0), prompt_input.get("num_outputs", 1), prompt_input,
                               body["version"])
        await _wait_as_preferred(request, remote)
        return JSONResponse(prediction(request, remote), status_code=201)

    async def get(request: Request) -> Response:
        if not _authorised(request, "Bearer"):
            return _unauthorised()
        remote = market.requests.get(request.path_params["pid"])
        if remote is None:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        return JSONResponse(prediction(request, remote))

    async def cancel(request: Request) -> Response:
        market.cancel(request.path_params["pid"])
        remote = market.requests.get(request.path_params["pid"])
        return JSONResponse(prediction(request, remote)) if remote else Response(status_code=404)

    async def file(request: Request) -> Response:
        return _png_response(market, request.path_params["rid"], int(request.path_params["n"]))

    return Starlette(routes=[
        Route("/v1/predictions", create, methods=["POST"]),
        Route("/v1/predictions/{pid}", get, methods=["GET"]),
        Route("/v1/predictions/{pid}/cancel", cancel, methods=["POST"]),
        Route("/files/{rid}/{n:int}.png", file, methods=["GET"]),
    ])


async def _wait_as_preferred(request: Request, remote: RemoteRequest) -> None:
    """`Prefer: wait=N`: hold the answer until the prediction is done or N seconds passed."""
    prefer = request.headers.get("prefer", "")
    wait_s = float(prefer.removeprefix("wait=")) if prefer.startswith("wait=") else 0.0
    until = time.monotonic() + wait_s
    while time.monotonic() < until and not remote.finished(time.monotonic()):
        await asyncio.sleep(0.01)


# ---- ComfyUI -----------------------------------------------------------------------------


def comfyui_app(market: StubMarket) -> Starlette:
    async def prompt(request: Request) -> Response:
        workflow = (await request.json()).get("prompt") or {}
        if (refusal := market.refusal()) is not None:
            return refusal
        nodes = {node.get("class_type"): node.get("inputs", {}) for node in workflow.values()}
        if not {"KSampler", "EmptyLatentImage", "CLIPTextEncode", "SaveImage"} <= set(nodes):
            return JSONResponse({"error": {"type": "prompt_no_outputs"}, "node_errors": {}}, status_code=400)
        texts = [n["inputs"]["text"] for n in workflow.values() if n.get("class_type") == "CLIPTextEncode"]
        remote = market.submit(request.headers["idempotency-key"], texts[0], nodes["KSampler"]["seed"],
                               nodes["EmptyLatentImage"]["batch_size"])
        return JSONResponse({"prompt_id": remote.request_id, "number": len(market.requests), "node_errors": {}})

    async def history(request: Request) -> Response:
        remote = market.requests.get(request.path_params["pid"])
        if remote is None or not remote.finished(time.monotonic()):
            return JSONResponse({})
        started_ms = remote.submitted_at * 1000
        images = [{"filename": f"{remote.request_id}_{i}.png", "subfolder": "genline", "type": "output"}
                  for i in range(remote.count)]
        return JSONResponse({remote.request_id: {
            "prompt": [], "outputs": {"9": {"images": images}},
            "status": {"status_str": "success", "completed": True, "messages": [
                ["execution_start", {"prompt_id": remote.request_id, "timestamp": started_ms}],
                ["execution_success", {"prompt_id": remote.request_id, "timestamp": started_ms + 400 * remote.count}],
            ]},
        }})

    async def view(request: Request) -> Response:
        if request.query_params.get("type") != "output" or request.query_params.get("subfolder") != "genline":
            return JSONResponse({"detail": "not found"}, status_code=404)
        request_id, _, n = request.query_params["filename"].removesuffix(".png").rpartition("_")
        return _png_response(market, request_id, int(n))

    async def queue(request: Request) -> Response:
        for prompt_id in (await request.json()).get("delete", []):
            market.cancel(prompt_id)
        return Response(status_code=200)

    async def interrupt(request: Request) -> Response:
        return Response(status_code=200)

    return Starlette(routes=[
        Route("/prompt", prompt, methods=["POST"]),
        Route("/history/{pid}", history, methods=["GET"]),
        Route("/view", view, methods=["GET"]),
        Route("/queue", queue, methods=["POST"]),
        Route("/interrupt", interrupt, methods=["POST"]),
    ])


# ---- serving -----------------------------------------------------------------------------


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run `app` on a free port of 127.0.0.1 in a thread; yields its base URL."""
    # With the protocol named, asyncio sets TCP_NODELAY on accepted connections; without
    # it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("stub server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# ---- registries over the stubs -----------------------------------------------------------


@dataclass(frozen=True)
class Stub:
    adapter: str
    url: str
    market: StubMarket


def stub_provider(stub: Stub, *, price: int, concurrency: int = 4, max_batch: int = 4, overall_s: float = 2.0,
                  prior: float = 0.8, versions: tuple[str, ...] = ("1",), latency_s: float = 0.05) -> dict:
    """A registry entry for `stub` (a plain dict, as it would come from YAML)."""
    remote = {"fal": "fal-ai/stub/dev", "replicate": "v-abc", "comfyui": "stub.safetensors"}[stub.adapter]
    return {
        "adapter": stub.adapter,
        "endpoint": stub.url,
        "credentials": "STUB_KEY" if stub.adapter != "comfyui" else None,
        "models": [{"name": "stub-model", "version": v, "remote_id": remote} for v in versions],
        "capabilities": {"min_side": 16, "max_images_per_request": max_batch},
        "price": {"per_image_micro_usd": price},
        "concurrency": concurrency,
        "timeouts": {"submit_s": min(1.0, overall_s), "overall_s": overall_s},
        "latency": {"base_s": latency_s, "per_image_s": 0.0},
        "pass_rate_prior": {"mean": prior, "strength": 4},
        "poll_interval_s": 0.02,
    }
