"""Simulators of the providers' published APIs: real HTTP servers on 127.0.0.1.

Each app answers as its provider documents it (shapes from tests/router/fixtures/, whose
README says where each came from) and checks requests as the provider would (unknown
fields, sizes a model cannot make, a missing key: the provider's error, not ours). One
`Market` holds a simulator's state: every submission with its body and headers, every
cancel and interrupt, every download and, on the foreign host, every credential that
arrived there. A test steers it with a `Script`:

    latency_s, hang, hang_every   how long jobs take (never, every n-th never)
    submit_status                 every submission answered with this error (401, 402, 429, 5xx, 422)
    poll_statuses                 the next polls answered with these errors, in order (503, 429)
    retry_after_s / wait_in_body  the wait a 429 or 503 states: header, or the provider's body text
    terminal                      how jobs end instead of succeeding: failed, canceled, aborted,
                                  moderated, interrupted
    output                        own (the provider's host) | foreign (another host) | redirect |
                                  wrong_size | corrupt | blank | drop_once | drop_always | too_large |
                                  expire_once (the first download of each image is refused, 403)
    max_in_progress               more jobs at once are refused with 429
    side                          images are side×side whatever was asked

`serve(app)` runs an app with uvicorn in a thread and yields its base URL; `Provider`
bundles a running simulator with its market, and `entry()` gives its providers.yaml entry.
"""

import asyncio
import base64
import copy
import email.parser
import email.policy
import functools
import io
import json
import math
import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.router.providers.painter import LocalGenerator

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "sim-secret"


@functools.cache
def _fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def fixture(name: str) -> Any:
    """A published example (a fresh copy: callers fill it in)."""
    return json.loads(_fixture_text(name))


# ---- the state behind a simulator ---------------------------------------------------------


@dataclass
class Script:
    latency_s: float = 0.05
    hang: bool = False
    hang_every: int = 0
    submit_status: int | None = None
    poll_statuses: list[int] = field(default_factory=list)
    retry_after_s: float | None = None
    wait_in_body: bool = False
    terminal: str | None = None
    output: str = "own"
    max_in_progress: int | None = None
    side: int | None = None
    # Compatibility with the scenarios written before outputs were checked: a black image.
    black: bool = False
    # A stage's result comes back as an MP4 video instead of an image.
    video: bool = False


# The names scenarios written before the simulators use (tests/e2e/test_quality_routing.py).
Behaviour = Script


@dataclass
class SimJob:
    id: str
    prompt: str
    seed: int | None
    count: int
    width: int
    height: int
    body: Any
    headers: dict[str, str]
    submitted_at: float
    done_at: float | None
    deadline_at: float | None = None
    cancelled_at: float | None = None
    input_image: bytes | None = None
    polls: int = 0
    number: int = 0
    # The model the submission named (a version, a model path), and the request's whole body
    # where `body` is the model's input inside it.
    model: str = ""
    envelope: Any = None

    def finished(self, now: float) -> bool:
        return self.done_at is not None and now >= self.done_at and self.cancelled_at is None

    def generated(self) -> bool:
        """Whether the provider did (and would bill) the work: done before any cancel."""
        return self.done_at is not None and (self.cancelled_at is None or self.cancelled_at >= self.done_at) \
            and time.monotonic() >= self.done_at

    def past_deadline(self, now: float) -> bool:
        return self.deadline_at is not None and now >= self.deadline_at and not self.finished(now)


@dataclass
class Market:
    script: Script = field(default_factory=Script)
    jobs: dict[str, SimJob] = field(default_factory=dict)
    refused: Counter = field(default_factory=Counter)
    cancels: list[str] = field(default_factory=list)
    interrupts: list[str] = field(default_factory=list)
    downloads: Counter = field(default_factory=Counter)
    # Credentials that reached the foreign host: (header, value).
    foreign_credentials: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    foreign_url: str = ""

    def reset(self, script: Script | None = None) -> None:
        with self.lock:
            self.script = script or Script()
            self.jobs.clear()
            self.refused.clear()
            self.cancels.clear()
            self.interrupts.clear()
            self.downloads.clear()
            self.foreign_credentials.clear()

    @property
    def requests(self) -> dict[str, SimJob]:
        return self.jobs

    @property
    def submissions(self) -> list[SimJob]:
        return list(self.jobs.values())

    def cancelled(self) -> list[SimJob]:
        return [job for job in self.jobs.values() if job.cancelled_at is not None]

    def submit(self, *, prompt: str, seed: int | None, count: int, width: int, height: int, body: Any,
               headers: dict[str, str], deadline_s: float | None = None, input_image: bytes | None = None,
               job_id: str | None = None, model: str = "", envelope: Any = None) -> SimJob:
        now, script = time.monotonic(), self.script
        with self.lock:
            nth = len(self.jobs) + 1
            hangs = script.hang or (script.hang_every > 0 and nth % script.hang_every == 0)
            side = script.side
            job = SimJob(id=job_id or uuid.uuid4().hex, prompt=prompt, seed=seed, count=count,
                         width=side or width, height=side or height, body=body, headers=headers, submitted_at=now,
                         done_at=None if hangs else now + script.latency_s,
                         deadline_at=now + deadline_s if deadline_s else None, input_image=input_image, number=nth,
                         model=model, envelope=envelope)
            self.jobs[job.id] = job
        return job

    def refusal(self, error) -> Response | None:
        """The error a submission gets, if any (checked and submitted with no await between)."""
        script = self.script
        if script.submit_status is not None:
            self.refused[script.submit_status] += 1
            return error(script.submit_status)
        if script.max_in_progress is not None and self.in_progress() >= script.max_in_progress:
            self.refused[429] += 1
            return error(429)
        return None

    def poll_fault(self, error) -> Response | None:
        with self.lock:
            status = self.script.poll_statuses.pop(0) if self.script.poll_statuses else None
        if status is None:
            return None
        self.refused[status] += 1
        return error(status)

    def cancel(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        self.cancels.append(job_id)
        if job is None or job.finished(time.monotonic()) or job.cancelled_at is not None:
            return False
        job.cancelled_at = time.monotonic()
        return True

    def in_progress(self) -> int:
        now = time.monotonic()
        return sum(1 for j in self.jobs.values() if j.cancelled_at is None and (j.done_at is None or now < j.done_at))

    def state(self, job: SimJob) -> str:
        """running | succeeded | canceled | deadline | one of the script's terminal ends."""
        now = time.monotonic()
        if job.cancelled_at is not None:
            return "canceled"
        if job.past_deadline(now):
            return "deadline"
        if not job.finished(now):
            return "running"
        return self.script.terminal or "succeeded"

    def generated_candidates(self, seed: int = 0) -> Counter:
        """How often each candidate index was generated, reading the batch seed sent (seed + start)."""
        counts: Counter = Counter()
        for job in self.jobs.values():
            if job.generated() and job.seed is not None:
                for offset in range(job.count):
                    counts[job.seed - seed + offset] += 1
        return counts

    # ---- images --------------------------------------------------------------------------

    def image_url(self, base: str, job: SimJob, n: int) -> str:
        output = self.script.output
        if output == "foreign" and self.foreign_url:
            return f"{self.foreign_url}/files/{job.id}/{n}.png"
        if output == "redirect":
            return f"{base}/redirect/{job.id}/{n}.png"
        return f"{base}/files/{job.id}/{n}.png"

    def image(self, job: SimJob, n: int) -> bytes:
        script = self.script
        if script.video and job.input_image is not None:
            return MP4_BYTES
        if script.black or script.output == "blank":
            return _flat_png(job.width, job.height)
        if script.output == "corrupt":
            return _painted(job.width, job.height, job.prompt, (job.seed or 0) + n)[:200]
        if script.output == "wrong_size":
            return _painted(job.width // 2 + 8, job.height // 2 + 8, job.prompt, (job.seed or 0) + n)
        if job.input_image is not None:
            return _doubled_png(job.input_image)
        return _painted(job.width, job.height, job.prompt, (job.seed or 0) + n)

    def image_b64(self, job: SimJob, n: int) -> str:
        return base64.b64encode(self.image(job, n)).decode()


# The first bytes of an MP4 file: what an image-to-video model returns.
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


@functools.lru_cache(maxsize=256)
def _painted(width: int, height: int, prompt: str, seed: int) -> bytes:
    return LocalGenerator(width=width, height=height, defect_rate=0).paint(prompt or "x", seed % 2**31, 1)[0].png


@functools.lru_cache(maxsize=32)
def _flat_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _doubled_png(image: bytes) -> bytes:
    with Image.open(io.BytesIO(image)) as source:
        buffer = io.BytesIO()
        source.resize((source.width * 2, source.height * 2)).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_uri_image(body: dict) -> bytes | None:
    uris = [v for v in body.values() if isinstance(v, str) and v.startswith("data:")]
    return base64.b64decode(uris[0].partition(",")[2]) if uris else None


async def _finished_or_abandoned(market: Market, job: SimJob, request: Request) -> bool:
    """A synchronous API works while the client waits: a client that hangs up abandons the job
    (recorded as its cancel). Whether the job finished."""
    while market.state(job) == "running":
        if await request.is_disconnected():
            market.cancel(job.id)
            return False
        await asyncio.sleep(0.01)
    return True


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# ---- files: every provider's images, and the foreign host ---------------------------------


def file_routes(market: Market, foreign: bool = False) -> list[Route]:
    async def file(request: Request) -> Response:
        if foreign:
            market.foreign_credentials.extend((name, value) for name, value in request.headers.items()
                                              if name in ("authorization", "x-key", "x-api-key"))
        return served_image(market, request.path_params["jid"], int(request.path_params["n"]))

    async def redirect(request: Request) -> Response:
        path = f"/files/{request.path_params['jid']}/{request.path_params['n']}.png"
        return Response(status_code=302, headers={"location": path})

    return [Route("/files/{jid}/{n:int}.png", file, methods=["GET"]),
            Route("/redirect/{jid}/{n:int}.png", redirect, methods=["GET"])]


def served_image(market: Market, job_id: str, n: int) -> Response:
    """An image as the script serves it: refused once, cut off, padded past the cap, or whole."""
    job = market.jobs.get(job_id)
    if job is None:
        return Response(status_code=404)
    market.downloads[(job.id, n)] += 1
    output, tries = market.script.output, market.downloads[(job.id, n)]
    if output == "expire_once" and tries == 1:
        return Response(b"<Error><Code>AuthenticationFailed</Code></Error>", status_code=403,
                        media_type="application/xml")
    data = market.image(job, n)
    if output == "drop_always" or (output == "drop_once" and tries == 1):
        return _dropped(data)
    if output == "too_large":
        data = data + os.urandom(1024 * 1024)
    return Response(data, media_type="video/mp4" if data == MP4_BYTES else "image/png")


def _dropped(data: bytes) -> Response:
    """Half the body, then the connection closes: the declared length is never reached."""
    async def half():
        yield data[: len(data) // 2]
    return StreamingResponse(half(), media_type="image/png", headers={"content-length": str(len(data))})


def foreign_app(market: Market) -> Starlette:
    return Starlette(routes=file_routes(market, foreign=True))


# ---- Replicate ----------------------------------------------------------------------------


def replicate_app(market: Market) -> Starlette:
    schema = fixture("replicate/prediction_request.schema.json")

    def error(status: int) -> Response:
        headers = {"retry-after": f"{market.script.retry_after_s:g}"} if market.script.retry_after_s is not None \
            and not market.script.wait_in_body else {}
        if status == 429:
            body = fixture("replicate/error_429.json")
            wait = market.script.retry_after_s if market.script.retry_after_s is not None else 1
            body["detail"] = f"Request was throttled. Expected available in {wait:g} second{'s' if wait != 1 else ''}."
        elif status == 402:
            body = fixture("replicate/error_402.json")
        elif status >= 500:
            body = fixture("replicate/error_500.json")
        else:
            body = {"title": "Error", "detail": f"HTTP {status}", "status": status}
        return JSONResponse(body, status_code=status, headers=headers)

    def prediction(request: Request, job: SimJob) -> dict:
        state = market.state(job)
        status = {"running": "processing", "deadline": "canceled", "moderated": "failed",
                  "interrupted": "canceled"}.get(state, state)
        template = fixture("replicate/prediction_succeeded.json" if status == "succeeded"
                           else "replicate/prediction_starting.json")
        base = f"{_base(request)}/v1/predictions/{job.id}"
        return template | {
            "id": job.id, "status": status, "input": job.body, "urls": {"get": base, "cancel": f"{base}/cancel",
                                                                        "web": base},
            "output": [market.image_url(_base(request), job, n) for n in range(job.count)]
            if status == "succeeded" else None,
            "error": "E1001: model failed" if status == "failed" else None,
            "metrics": {"predict_time": 0.5 * job.count} if status == "succeeded" else {},
        }

    async def create(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return JSONResponse({"title": "Unauthenticated", "detail": "You did not pass a valid authentication token",
                                 "status": 401}, status_code=401)
        body = await request.json()
        unknown = set(body) - set(schema["properties"])
        if unknown or "input" not in body or ("model" not in request.path_params and "version" not in body):
            return JSONResponse({"title": "Input validation failed", "detail": f"unknown {sorted(unknown)}",
                                 "status": 422}, status_code=422)
        if (refusal := market.refusal(error)) is not None:
            return refusal
        given = body["input"]
        width, height = _replicate_size(given)
        job = market.submit(prompt=given.get("prompt", ""), seed=given.get("seed"),
                            count=given.get("num_outputs", 1), width=width, height=height, body=given,
                            headers=dict(request.headers), deadline_s=_duration_s(request.headers.get("cancel-after")),
                            input_image=_data_uri_image(given), envelope=body,
                            model=body.get("version") or request.path_params.get("model", ""))
        return JSONResponse(prediction(request, job), status_code=201)

    async def get(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
        if (fault := market.poll_fault(error)) is not None:
            return fault
        job = market.jobs.get(request.path_params["pid"])
        if job is None:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        job.polls += 1
        return JSONResponse(prediction(request, job))

    async def cancel(request: Request) -> Response:
        market.cancel(request.path_params["pid"])
        job = market.jobs.get(request.path_params["pid"])
        return JSONResponse(prediction(request, job)) if job else Response(status_code=404)

    return Starlette(routes=[
        Route("/v1/predictions", create, methods=["POST"]),
        Route("/v1/models/{model:path}/predictions", create, methods=["POST"]),
        Route("/v1/predictions/{pid}", get, methods=["GET"]),
        Route("/v1/predictions/{pid}/cancel", cancel, methods=["POST"]),
        *file_routes(market),
    ])


def _replicate_size(given: dict) -> tuple[int, int]:
    if "aspect_ratio" in given:
        w, h = (int(part) for part in given["aspect_ratio"].split(":"))
        area = float(given.get("megapixels", "1")) * 1024 * 1024
        side = math.sqrt(area * w / h)
        return round(side / 16) * 16, round(area / side / 16) * 16
    return given.get("width", 1024), given.get("height", 1024)


def _duration_s(text: str | None) -> float | None:
    """Replicate's Cancel-After: `30`, `30s`, `5m`, `1h30m45s`."""
    if not text:
        return None
    parts = re.findall(r"(\d+)([hms]?)", text)
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1, "": 1}[unit] for n, unit in parts) or None


# ---- fal ----------------------------------------------------------------------------------


def fal_app(market: Market) -> Starlette:
    def error(status: int) -> Response:
        headers = {"retry-after": f"{market.script.retry_after_s:g}"} if market.script.retry_after_s is not None \
            else {}
        if status == 402:  # fal locks the account when its balance is exhausted
            return JSONResponse({"detail": "User is locked. Reason: Exhausted balance. Top up your balance at"
                                           " fal.ai/dashboard/billing."}, status_code=403)
        return JSONResponse({"detail": f"HTTP {status}"}, status_code=status, headers=headers)

    async def submit(request: Request) -> Response:
        if request.headers.get("authorization") != f"Key {SECRET}":
            return JSONResponse({"detail": "Unauthorized"}, status_code=401)
        body = await request.json()
        if (refusal := market.refusal(error)) is not None:
            return refusal
        size = body.get("image_size") if isinstance(body.get("image_size"), dict) else {}
        timeout = request.headers.get("x-fal-request-timeout")
        job = market.submit(prompt=body.get("prompt", ""), seed=body.get("seed"), count=body.get("num_images", 1),
                            width=size.get("width", 1024), height=size.get("height", 768), body=body,
                            headers=dict(request.headers), deadline_s=float(timeout) if timeout else None,
                            input_image=_data_uri_image(body), model=request.path_params["model"],
                            envelope=dict(request.query_params))
        app, base = _fal_app(request.path_params["model"]), _base(request)
        urls = f"{base}/{app}/requests/{job.id}"
        return JSONResponse(fixture("fal/submit.json") | {
            "request_id": job.id, "response_url": urls, "status_url": f"{urls}/status", "cancel_url": f"{urls}/cancel"})

    async def status(request: Request) -> Response:
        if (fault := market.poll_fault(error)) is not None:
            return fault
        job = market.jobs.get(request.path_params["rid"])
        if job is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        job.polls += 1
        state, url = market.state(job), f"{_base(request)}/{request.path_params['app']}/requests/{job.id}"
        if state == "running":
            return JSONResponse(fixture("fal/status_in_progress.json") | {"response_url": url})
        body = fixture("fal/status_completed.json") | {"response_url": url}
        if state in ("failed", "deadline", "canceled", "aborted", "interrupted"):
            body |= {"error": "Request failed", "error_type": "request_timeout" if state == "deadline"
                     else "internal_error"}
        return JSONResponse(body)

    async def result(request: Request) -> Response:
        job = market.jobs.get(request.path_params["rid"])
        if job is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        state = market.state(job)
        if state == "running":
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        if state not in ("succeeded", "moderated"):
            return JSONResponse({"detail": "Internal server error"}, status_code=500,
                                headers={"x-fal-request-id": job.id})
        if job.input_image is not None:
            return JSONResponse({"image": {"url": market.image_url(_base(request), job, 0)}})
        images = [{"url": market.image_url(_base(request), job, n), "content_type": "image/png",
                   "file_name": f"{n}.png", "width": job.width, "height": job.height} for n in range(job.count)]
        return JSONResponse(fixture("fal/result.json") | {
            "images": images, "seed": job.seed, "timings": {"inference": 0.5 * job.count},
            "has_nsfw_concepts": [market.script.terminal == "moderated"] * job.count, "prompt": job.prompt})

    async def cancel(request: Request) -> Response:
        cancelled = market.cancel(request.path_params["rid"])
        return JSONResponse(fixture("fal/cancel_requested.json" if cancelled else "fal/cancel_already_completed.json"),
                            status_code=202 if cancelled else 400)

    return Starlette(routes=[
        *file_routes(market),
        Route("/{app:path}/requests/{rid}/status", status, methods=["GET"]),
        Route("/{app:path}/requests/{rid}/cancel", cancel, methods=["PUT"]),
        Route("/{app:path}/requests/{rid}", result, methods=["GET"]),
        Route("/{model:path}", submit, methods=["POST"]),
    ])


def _fal_app(model: str) -> str:
    return "/".join(model.split("/")[:2])


# ---- ComfyUI ------------------------------------------------------------------------------


def comfyui_app(market: Market, targeted_interrupt: bool = True, lists_running: bool = True) -> Starlette:
    """`targeted_interrupt`: /interrupt honours a prompt_id (recent servers); `lists_running`:
    GET /queue says which prompt runs (else, as a proxy that hides it, only how many wait)."""
    def error(status: int) -> Response:
        # ComfyUI has no limits of its own; a proxy in front of it answers these.
        headers = {"retry-after": f"{market.script.retry_after_s:g}"} if market.script.retry_after_s is not None \
            else {}
        return JSONResponse({"error": f"HTTP {status}"}, status_code=status, headers=headers)

    async def prompt(request: Request) -> Response:
        given = await request.json()
        graph = given.get("prompt") or {}
        if (refusal := market.refusal(error)) is not None:
            return refusal
        nodes = {node.get("class_type"): node.get("inputs", {}) for node in graph.values() if isinstance(node, dict)}
        if not {"KSampler", "EmptyLatentImage", "CLIPTextEncode", "SaveImage"} <= set(nodes):
            return JSONResponse(fixture("comfyui/prompt_error.json"), status_code=400)
        latent = nodes["EmptyLatentImage"]
        texts = [n["inputs"]["text"] for n in graph.values() if n.get("class_type") == "CLIPTextEncode"]
        job = market.submit(prompt=texts[0], seed=nodes["KSampler"]["seed"], count=latent["batch_size"],
                            width=latent["width"], height=latent["height"], body=given, headers=dict(request.headers))
        return JSONResponse(fixture("comfyui/prompt.json") | {"prompt_id": job.id, "number": job.number})

    async def history(request: Request) -> Response:
        if (fault := market.poll_fault(error)) is not None:
            return fault
        job = market.jobs.get(request.path_params["pid"])
        if job is None:
            return JSONResponse({})
        job.polls += 1
        state = market.state(job)
        if state == "running":
            return JSONResponse({})
        template = fixture("comfyui/history_success.json")
        entry = next(iter(template.values()))
        entry["prompt"] = [job.number, job.id, job.body["prompt"], {"client_id": job.body.get("client_id")}, ["9"]]
        entry["outputs"] = {"9": {"images": [{"filename": f"{job.id}_{n}.png", "subfolder": "", "type": "output"}
                                             for n in range(job.count)]}}
        if state != "succeeded":
            ended = "execution_interrupted" if state in ("canceled", "interrupted") else "execution_error"
            entry["status"] = {"status_str": "error", "completed": False,
                               "messages": [["execution_start", {"prompt_id": job.id, "timestamp": 1}],
                                            [ended, {"prompt_id": job.id, "timestamp": 2}]]}
            entry["outputs"] = {}
        return JSONResponse({job.id: entry})

    async def view(request: Request) -> Response:
        if request.query_params.get("type") != "output":
            return JSONResponse({"detail": "not found"}, status_code=404)
        job_id, _, n = request.query_params["filename"].removesuffix(".png").rpartition("_")
        return served_image(market, job_id, int(n))

    def running_and_pending() -> tuple[list[SimJob], list[SimJob]]:
        live = [j for j in market.jobs.values() if market.state(j) == "running" and j.cancelled_at is None]
        return live[:1], live[1:]  # ComfyUI runs one prompt at a time

    async def get_queue(request: Request) -> Response:
        running, pending = running_and_pending()
        if not lists_running:
            return JSONResponse({"exec_info": {"queue_remaining": len(running) + len(pending)}})
        def item(job: SimJob) -> list:
            return [job.number, job.id, job.body["prompt"], {"client_id": job.body.get("client_id")}, ["9"]]
        return JSONResponse({"queue_running": [item(j) for j in running], "queue_pending": [item(j) for j in pending]})

    async def post_queue(request: Request) -> Response:
        _, pending = running_and_pending()
        for prompt_id in (await request.json()).get("delete", []):
            if any(job.id == prompt_id for job in pending):
                market.cancel(prompt_id)
        return Response(status_code=200)

    async def interrupt(request: Request) -> Response:
        try:
            asked = (await request.json()).get("prompt_id")
        except ValueError:
            asked = None
        running, _ = running_and_pending()
        for job in running:
            if asked is None or not targeted_interrupt or job.id == asked:
                market.interrupts.append(job.id)
                market.cancel(job.id)
        return Response(status_code=200)

    return Starlette(routes=[
        Route("/prompt", prompt, methods=["POST"]),
        Route("/history/{pid}", history, methods=["GET"]),
        Route("/view", view, methods=["GET"]),
        Route("/queue", get_queue, methods=["GET"]),
        Route("/queue", post_queue, methods=["POST"]),
        Route("/interrupt", interrupt, methods=["POST"]),
    ])


# ---- OpenAI Images and compatible servers ----------------------------------------------------


def openai_app(market: Market, compatible: bool = False) -> Starlette:
    schema = fixture("openai/create_image_request.schema.json")

    def error(status: int) -> Response:
        headers = {"retry-after-ms": f"{market.script.retry_after_s * 1000:g}"} \
            if market.script.retry_after_s is not None and not market.script.wait_in_body else {}
        if status == 402:  # OpenAI says "out of credit" with a 429 and its code
            return JSONResponse(fixture("openai/error_insufficient_quota.json"), status_code=429)
        if status == 429:
            body = fixture("openai/error_rate_limit.json")
            wait = market.script.retry_after_s or 12
            body["error"]["message"] = body["error"]["message"].replace("in 12s", f"in {wait:g}s")
            return JSONResponse(body, status_code=429, headers=headers)
        return JSONResponse({"error": {"message": f"HTTP {status}", "type": "server_error", "param": None,
                                       "code": None}}, status_code=status, headers=headers)

    async def generate(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return JSONResponse({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                           "param": None, "code": "invalid_api_key"}}, status_code=401)
        body = await request.json()
        allowed = set(schema["properties"]) | ({"width", "height", "steps", "seed", "negative_prompt"}
                                               if compatible else set())
        unknown = set(body) - allowed
        size = body.get("size", "1024x1024")
        if unknown or (not compatible and size not in schema["sizes"]):
            return JSONResponse({"error": {"message": f"Invalid value: {sorted(unknown) or size}",
                                           "type": "invalid_request_error", "param": "size", "code": "invalid_value"}},
                                status_code=400)
        if (refusal := market.refusal(error)) is not None:
            return refusal
        width, height = (body["width"], body["height"]) if "width" in body else map(int, size.split("x"))
        job = market.submit(prompt=body["prompt"], seed=body.get("seed"), count=body.get("n", 1), width=width,
                            height=height, body=body, headers=dict(request.headers))
        if not await _finished_or_abandoned(market, job, request):
            return Response(status_code=499)
        if market.state(job) == "moderated":
            return JSONResponse(fixture("openai/error_moderation.json"), status_code=400)
        if market.state(job) != "succeeded":
            return error(500)
        as_url = compatible and body.get("response_format") == "url"
        data = [{"url": market.image_url(_base(request), job, n)} if as_url else {"b64_json": market.image_b64(job, n)}
                for n in range(job.count)]
        if compatible:
            return JSONResponse(fixture("together/images_response.json") | {
                "data": [item | {"index": n} for n, item in enumerate(data)], "model": body.get("model")})
        return JSONResponse(fixture("openai/images_response.json") | {"data": data, "size": size})

    path = "/v1/images/generations"
    return Starlette(routes=[Route(path, generate, methods=["POST"]), *file_routes(market)])


# ---- Black Forest Labs --------------------------------------------------------------------


def bfl_app(market: Market) -> Starlette:
    schema = fixture("bfl/flux_pro_1_1_inputs.schema.json")

    def error(status: int) -> Response:
        headers = {"retry-after": f"{market.script.retry_after_s:g}"} if market.script.retry_after_s is not None \
            else {}
        detail = {402: "Insufficient credits", 429: "You have reached the maximum number of active tasks"}
        return JSONResponse({"detail": detail.get(status, f"HTTP {status}")}, status_code=status, headers=headers)

    async def submit(request: Request) -> Response:
        if request.headers.get("x-key") != SECRET:
            return JSONResponse({"detail": "Not authenticated - Invalid Authentication"}, status_code=403)
        body = await request.json()
        unknown = set(body) - set(schema["properties"])
        sides = [body.get("width", 1024), body.get("height", 768)]
        if unknown or any(s % 32 or not 256 <= s <= 1440 for s in sides):
            return JSONResponse({"detail": [{"loc": ["body", "width"], "msg": "invalid", "type": "value_error"}]},
                                status_code=422)
        if (refusal := market.refusal(error)) is not None:
            return refusal
        job = market.submit(prompt=body.get("prompt", ""), seed=body.get("seed"), count=1, width=sides[0],
                            height=sides[1], body=body, headers=dict(request.headers))
        return JSONResponse(fixture("bfl/async_response.json") | {
            "id": job.id, "polling_url": f"{_base(request)}/v1/get_result?id={job.id}"})

    async def get_result(request: Request) -> Response:
        if request.headers.get("x-key") != SECRET:
            return JSONResponse({"detail": "Not authenticated"}, status_code=403)
        if (fault := market.poll_fault(error)) is not None:
            return fault
        job = market.jobs.get(request.query_params.get("id", ""))
        if job is None:
            return JSONResponse({"id": request.query_params.get("id"), "status": "Task not found", "result": None})
        job.polls += 1
        state = market.state(job)
        if state == "running":
            return JSONResponse(fixture("bfl/result_pending.json") | {"id": job.id})
        if state == "moderated":
            return JSONResponse(fixture("bfl/result_moderated.json") | {"id": job.id})
        if state != "succeeded":
            return JSONResponse({"id": job.id, "status": "Error", "result": None, "details": {"error": state}})
        ready = fixture("bfl/result_ready.json")
        # Samples live on a delivery host, signed: the API key must never go there.
        ready["result"] |= {"sample": market.image_url(market.foreign_url or _base(request), job, 0)
                            if market.script.output == "own" else market.image_url(_base(request), job, 0),
                            "seed": job.seed, "prompt": job.prompt}
        return JSONResponse(ready | {"id": job.id})

    return Starlette(routes=[Route("/v1/get_result", get_result, methods=["GET"]), *file_routes(market),
                             Route("/v1/{model}", submit, methods=["POST"])])


# ---- Stability AI -------------------------------------------------------------------------


def stability_app(market: Market) -> Starlette:
    schema = fixture("stability/core_form.schema.json")

    def error(status: int) -> Response:
        headers = {"retry-after": f"{market.script.retry_after_s:g}"} if market.script.retry_after_s is not None \
            else {}
        if status == 429:
            return JSONResponse(fixture("stability/error_429.json"), status_code=429, headers=headers)
        name = {402: "payment_required", 401: "unauthorized"}.get(status, "server_error")
        return JSONResponse({"id": uuid.uuid4().hex, "name": name, "errors": [f"HTTP {status}"]}, status_code=status,
                            headers=headers)

    async def generate(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return error(401)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return JSONResponse(fixture("stability/error_400.json"), status_code=400)
        form = _form_fields(request.headers["content-type"], await request.body())
        unknown = set(form) - set(schema["properties"])
        ratio = form.get("aspect_ratio", "1:1")
        if unknown or "prompt" not in form or ratio not in schema["aspect_ratio"]:
            return JSONResponse(fixture("stability/error_400.json"), status_code=400)
        if (refusal := market.refusal(error)) is not None:
            return refusal
        w, h = (int(part) for part in ratio.split(":"))
        side = math.sqrt(1e6 * w / h)
        job = market.submit(prompt=form["prompt"], seed=int(form["seed"]) if "seed" in form else None, count=1,
                            width=round(side / 64) * 64, height=round(1e6 / side / 64) * 64, body=form,
                            headers=dict(request.headers))
        if not await _finished_or_abandoned(market, job, request):
            return Response(status_code=499)
        state = market.state(job)
        if state == "moderated":
            return JSONResponse(fixture("stability/error_403_moderation.json"), status_code=403)
        if state != "succeeded":
            return error(500)
        if request.headers.get("accept", "").startswith("image/"):
            return Response(market.image(job, 0), media_type="image/png",
                            headers={"finish-reason": "SUCCESS", "seed": str(job.seed or 0)})
        return JSONResponse(fixture("stability/generate_json.json") | {"image": market.image_b64(job, 0),
                                                                       "seed": job.seed or 0})

    return Starlette(routes=[Route("/v2beta/stable-image/generate/{model}", generate, methods=["POST"]),
                             *file_routes(market)])


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The text fields of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name and part.get_filename() is None:
            fields[name] = part.get_content()
    return fields


# ---- Runware ------------------------------------------------------------------------------


def runware_app(market: Market) -> Starlette:
    def error(status: int) -> Response:
        headers = {"retry-after": f"{market.script.retry_after_s:g}"} if market.script.retry_after_s is not None \
            else {}
        code = {402: "insufficientCredits", 429: "rateLimitExceeded", 401: "invalidApiKey"}.get(status, "serverError")
        return JSONResponse({"errors": [{"code": code, "message": f"HTTP {status}"}]}, status_code=status,
                            headers=headers)

    async def tasks(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return JSONResponse(fixture("runware/errors.json"), status_code=401)
        given = await request.json()
        task = given[0] if isinstance(given, list) and given else {}
        if task.get("taskType") == "getResponse":
            return poll(request, task)
        if task.get("width", 0) % 64 or task.get("height", 0) % 64 or "positivePrompt" not in task:
            return JSONResponse({"errors": [{"code": "invalidWidth", "message": "width must be a multiple of 64",
                                             "parameter": "width", "taskUUID": task.get("taskUUID")}]},
                                status_code=400)
        if (refusal := market.refusal(error)) is not None:
            return refusal
        job = market.submit(prompt=task["positivePrompt"], seed=task.get("seed"), count=task.get("numberResults", 1),
                            width=task["width"], height=task["height"], body=given, headers=dict(request.headers),
                            job_id=task["taskUUID"])
        return JSONResponse(fixture("runware/async_ack.json") | {
            "data": [{"taskType": "imageInference", "taskUUID": job.id}]})

    def poll(request: Request, task: dict) -> Response:
        if (fault := market.poll_fault(error)) is not None:
            return fault
        job = market.jobs.get(task.get("taskUUID", ""))
        if job is None:
            return JSONResponse({"errors": [{"code": "taskNotFound", "message": "task not found", "status": "error",
                                             "taskUUID": task.get("taskUUID")}]})
        job.polls += 1
        state = market.state(job)
        if state == "running":
            return JSONResponse(fixture("runware/get_response_processing.json") | {
                "data": [{"taskType": "imageInference", "taskUUID": job.id, "status": "processing"}]})
        if state != "succeeded":
            code = "contentModerationFailed" if state == "moderated" else "inferenceFailed"
            return JSONResponse({"errors": [{"code": code, "message": state, "status": "error", "taskUUID": job.id}]})
        item = fixture("runware/get_response_success.json")["data"][0]
        # Images are served from another host than the API (im.runware.ai): no key goes there.
        base = market.foreign_url if market.script.output == "own" and market.foreign_url else _base(request)
        return JSONResponse({"data": [item | {"taskUUID": job.id, "imageUUID": f"{job.id}-{n}",
                                              "imageURL": market.image_url(base, job, n), "seed": (job.seed or 0) + n,
                                              "cost": 0.0013} for n in range(job.count)]})

    return Starlette(routes=[Route("/v1", tasks, methods=["POST"]), *file_routes(market)])


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
          overall_s: float = 2.0, prior: float = 0.8, versions: tuple[str, ...] = ("1",), latency_s: float = 0.05,
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
        "timeouts": {"submit_s": min(1.0, overall_s), "overall_s": overall_s, "poll_backoff_max_s": 0.2},
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
