"""The state behind the provider simulators (stubs.py): one `Market` per simulator holds every
submission with its body and headers, every cancel and interrupt, every download and, on the
foreign host, every credential that arrived there; a test steers it with a `Script`:

    latency_s, hang, hang_every   how long jobs take (never, every n-th never)
    submit_status                 every submission answered with this error (401, 402, 429, 5xx, 422)
    poll_statuses                 the next polls answered with these errors, in order (503, 429)
    retry_after_s / wait_in_body  the wait a 429 or 503 states: header, or the provider's body text
    terminal                      how jobs end instead of succeeding: failed, canceled, aborted,
                                  moderated, interrupted
    output                        own (the provider's host) | foreign (another host) | redirect |
                                  wrong_size | corrupt | blank | drop_once | drop_always | too_large |
                                  expire_once (the first download of each image is refused, 403, as
                                  an expired signed URL is) | expire_always (every download is)
    flagged                       fal's safety checker flags this many of a batch's images
    queue_s                       a job waits this long for a runner before it starts (fal's
                                  X-Fal-Request-Timeout bounds only this wait)
    max_in_progress               more jobs at once are refused with 429
    side                          images are side×side whatever was asked

and the files every simulator serves (its images, and those of a foreign host).
"""

import asyncio
import base64
import functools
import io
import json
import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from services.router.providers.local.painter import CandidateRange, LocalGenerator

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
    flagged: int = 0
    queue_s: float = 0.0


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

    def started_at(self, queue_s: float) -> float:
        return self.submitted_at + queue_s


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
                         done_at=None if hangs else now + script.queue_s + script.latency_s,
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

    def state(self, job: SimJob, deadline_to_start: bool = False) -> str:
        """running | succeeded | canceled | deadline | one of the script's terminal ends.
        `deadline_to_start`: the deadline bounds only the wait for a runner (fal's)."""
        now = time.monotonic()
        if job.cancelled_at is not None:
            return "canceled"
        if job.past_deadline(now) and (not deadline_to_start or job.deadline_at < job.started_at(self.script.queue_s)):
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
    return LocalGenerator(width=width, height=height, defect_rate=0).paint(CandidateRange(prompt=prompt or "x", seed=seed % 2**31, count=1))[0].png


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
    if (output == "expire_once" and tries == 1) or output == "expire_always":
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
