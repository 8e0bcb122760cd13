"""Simulators of hosted video models: fal's queue and Replicate's predictions, as they run
Kling 2.1, Hailuo-02, Veo 3 Fast and Wan 2.2 (real HTTP on 127.0.0.1, over the same `Market`
and `Script` as the image simulators, market.py).

Each model's input is checked against the schema its provider publishes for it
(fixtures/video/*.schema.json: unknown fields, types, enums and bounds refused with the
provider's 422), and a finished job answers with the provider's published shape: fal's
`{"video": {url, content_type, file_name, file_size}}`, Replicate's one MP4 URL as `output`.
The file behind the URL is a real MP4 at the size the model makes for what it was asked
(its tier's short side, the first frame's or the asked aspect ratio) and at its rate; to keep
the suite fast it is half a second long, whatever length was asked (the router does not judge
length, the scorer does). `Script.output` plays the file's faults: `expire_once` /
`expire_always` (its host answers 403, as an expired signed URL does), `corrupt` (a clip whose
media does not decode), `cut` (a clip that ends halfway, its index declaring every frame),
`still` (a PNG where a clip was promised), `wrong_size`.
"""

import functools
import io
from typing import Any

import av
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.router.providers.local.clip_maker import ClipMaker, ClipShape, ClipTake
from tests.router.market import SECRET, Market, SimJob, _base, fixture

# The models each simulator runs: the schema of its input, how it reads the asked shape.
FAL_MODELS = {
    "fal-ai/kling-video/v2.1/standard/image-to-video": "video/fal_kling_2_1_standard_i2v_inputs.schema.json",
    "fal-ai/minimax/hailuo-02/standard/text-to-video": "video/fal_hailuo_02_standard_t2v_inputs.schema.json",
    "fal-ai/veo3/fast": "video/fal_veo3_fast_inputs.schema.json",
}
REPLICATE_MODELS = {
    "kwaivgi/kling-v2.1": "video/replicate_kling_v2_1_inputs.schema.json",
    "wan-video/wan-2.2-i2v-fast": "video/replicate_wan_2_2_i2v_fast_inputs.schema.json",
}
SIM_CLIP_S = 0.5


def schema_errors(schema: dict, given: dict) -> list[str]:
    """What the provider's schema refuses in `given` (the checks its 422 makes)."""
    errors = [f"{name}: field required" for name in schema.get("required", []) if name not in given]
    for name, value in given.items():
        spec = schema["properties"].get(name)
        if spec is None:
            errors.append(f"{name}: extra inputs are not permitted")
            continue
        kind = {"string": str, "integer": int, "number": (int, float), "boolean": bool}[spec["type"]]
        if not isinstance(value, kind) or (spec["type"] in ("integer", "number") and isinstance(value, bool)):
            errors.append(f"{name}: not a {spec['type']}")
        elif "enum" in spec and value not in spec["enum"]:
            errors.append(f"{name}: not one of {spec['enum']}")
        elif ("minimum" in spec and value < spec["minimum"]) or ("maximum" in spec and value > spec["maximum"]):
            errors.append(f"{name}: out of range")
    return errors


def clip_shape(model: str, given: dict, first_frame: bytes | None) -> tuple[int, int, int]:
    """Width, height and rate of the clip the model makes for `given`."""
    short = {"standard": 720, "pro": 1080}.get(given.get("mode", ""), 0) or \
        {"480p": 480, "720p": 720, "1080p": 1080}.get(given.get("resolution", ""), 0) or \
        (768 if "hailuo" in model else 720)
    if first_frame is not None:
        with Image.open(io.BytesIO(first_frame)) as image:
            across, down = image.size
    else:
        across, down = (int(part) for part in given.get("aspect_ratio", "16:9").split(":"))
    long = round(short * max(across, down) / min(across, down) / 2) * 2
    width, height = (long, short) if across >= down else (short, long)
    fps = given.get("frames_per_second") or (25 if "hailuo" in model else 24)
    return width, height, fps


@functools.lru_cache(maxsize=16)
def sim_clip(width: int, height: int, fps: int, prompt: str, defect: str | None = None) -> bytes:
    maker = ClipMaker(ClipShape(width=width, height=height, duration_s=SIM_CLIP_S, fps=fps))
    return maker.from_text(prompt or "clip", ClipTake(1, defect)).data  # type: ignore[arg-type]


def served_clip(market: Market, job_id: str) -> Response:
    job = market.jobs.get(job_id)
    if job is None:
        return Response(status_code=404)
    market.downloads[(job.id, 0)] += 1
    output, tries = market.script.output, market.downloads[(job.id, 0)]
    if (output == "expire_once" and tries == 1) or output == "expire_always":
        return Response(b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                        status_code=403, media_type="application/xml")
    fps = job.body.get("_fps", 24)
    if output == "still":
        buffer = io.BytesIO()
        Image.new("RGB", (job.width, job.height), (120, 80, 40)).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="video/mp4")  # what the provider claims
    width, height = (job.width // 2 + 8, job.height // 2 + 8) if output == "wrong_size" else (job.width, job.height)
    data = sim_clip(width, height, fps, job.prompt, "corrupt" if output == "corrupt" else None)
    if output == "cut":
        data = cut_between_frames(data)
    return Response(data, media_type="video/mp4")


def cut_between_frames(data: bytes) -> bytes:
    """The MP4 ended after half its frames, between two of them: its index still declares
    every frame and the whole length, and the frames left decode."""
    with av.open(io.BytesIO(data)) as container:
        packets = [(packet.pos, packet.size) for packet in container.demux(container.streams.video[0]) if packet.size]
    position, size = packets[len(packets) // 2 - 1]
    return data[: position + size]


def _first_frame(given: dict) -> bytes | None:
    import base64

    for value in given.values():
        if isinstance(value, str) and value.startswith("data:image/"):
            return base64.b64decode(value.partition(",")[2])
    return None


def _submitted(market: Market, model: str, given: dict, request: Request, deadline_s: float | None,
               envelope: Any) -> SimJob:
    first = _first_frame(given)
    width, height, fps = clip_shape(model, given, first)
    return market.submit(prompt=given.get("prompt", ""), seed=given.get("seed"), count=1, width=width,
                         height=height, body=given | {"_fps": fps}, headers=dict(request.headers),
                         deadline_s=deadline_s, input_image=first, model=model, envelope=envelope)


# ---- fal ----------------------------------------------------------------------------------


def fal_video_app(market: Market) -> Starlette:
    def error(status: int) -> Response:
        headers = {"retry-after": f"{market.script.retry_after_s:g}"} if market.script.retry_after_s is not None \
            else {}
        return JSONResponse({"detail": f"HTTP {status}"}, status_code=status, headers=headers)

    async def submit(request: Request) -> Response:
        if request.headers.get("authorization") != f"Key {SECRET}":
            return JSONResponse({"detail": "Unauthorized"}, status_code=401)
        model, body = request.path_params["model"], await request.json()
        if model not in FAL_MODELS:
            return JSONResponse({"detail": "Application not found"}, status_code=404)
        problems = schema_errors(fixture(FAL_MODELS[model]), body)
        if problems:
            return JSONResponse({"detail": [{"loc": ["body", p.split(":")[0]], "msg": p, "type": "value_error"}
                                            for p in problems]}, status_code=422)
        if (refusal := market.refusal(error)) is not None:
            return refusal
        timeout = request.headers.get("x-fal-request-timeout")
        job = _submitted(market, model, body, request, float(timeout) if timeout else None, None)
        urls = f"{_base(request)}/{'/'.join(model.split('/')[:2])}/requests/{job.id}"
        return JSONResponse(fixture("fal/submit.json") | {
            "request_id": job.id, "response_url": urls, "status_url": f"{urls}/status", "cancel_url": f"{urls}/cancel"})

    async def status(request: Request) -> Response:
        if (fault := market.poll_fault(error)) is not None:
            return fault
        job = market.jobs.get(request.path_params["rid"])
        if job is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        job.polls += 1
        url = f"{_base(request)}/{request.path_params['app']}/requests/{job.id}"
        state = market.state(job, deadline_to_start=True)
        if state == "running":
            return JSONResponse(fixture("fal/status_in_progress.json") | {"response_url": url})
        body = fixture("fal/status_completed.json") | {"response_url": url}
        if state in ("failed", "canceled"):
            body |= {"error": "Request failed", "error_type": "internal_error"}
        return JSONResponse(body)

    async def result(request: Request) -> Response:
        job = market.jobs.get(request.path_params["rid"])
        if job is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        if market.state(job, deadline_to_start=True) != "succeeded":
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        published = fixture("video/fal_video_result.json")
        return JSONResponse(published | {"video": published["video"] | {
            "url": f"{_base(request)}/clips/{job.id}.mp4", "file_name": f"{job.id}.mp4"}})

    async def cancel(request: Request) -> Response:
        cancelled = market.cancel(request.path_params["rid"])
        return JSONResponse(fixture("fal/cancel_requested.json" if cancelled else "fal/cancel_already_completed.json"),
                            status_code=202 if cancelled else 400)

    async def clip(request: Request) -> Response:
        return served_clip(market, request.path_params["jid"])

    return Starlette(routes=[
        Route("/clips/{jid}.mp4", clip, methods=["GET"]),
        Route("/{app:path}/requests/{rid}/status", status, methods=["GET"]),
        Route("/{app:path}/requests/{rid}/cancel", cancel, methods=["PUT"]),
        Route("/{app:path}/requests/{rid}", result, methods=["GET"]),
        Route("/{model:path}", submit, methods=["POST"]),
    ])


# ---- Replicate ----------------------------------------------------------------------------


def replicate_video_app(market: Market) -> Starlette:
    def error(status: int) -> Response:
        if status == 429:
            body = fixture("replicate/error_429.json")
            wait = market.script.retry_after_s if market.script.retry_after_s is not None else 1
            body["detail"] = f"Request was throttled. Expected available in {wait:g} second{'s' if wait != 1 else ''}."
            return JSONResponse(body, status_code=429)
        return JSONResponse(fixture("replicate/error_500.json") if status >= 500 else {"detail": f"HTTP {status}"},
                            status_code=status)

    def prediction(request: Request, job: SimJob) -> dict:
        state = market.state(job)
        status = {"running": "processing", "deadline": "canceled"}.get(state, state)
        base = f"{_base(request)}/v1/predictions/{job.id}"
        template = fixture("video/replicate_video_prediction_succeeded.json" if status == "succeeded"
                           else "replicate/prediction_starting.json")
        return template | {
            "id": job.id, "model": job.model, "status": status, "urls": {"get": base, "cancel": f"{base}/cancel"},
            "input": {k: v for k, v in job.body.items() if not k.startswith("_")},
            "output": f"{_base(request)}/clips/{job.id}.mp4" if status == "succeeded" else None,
            "error": "E6716: the model failed" if status == "failed" else None,
            "metrics": {"predict_time": 143.2} if status == "succeeded" else {},
        }

    async def create(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return JSONResponse({"title": "Unauthenticated", "status": 401}, status_code=401)
        model, body = request.path_params["model"], await request.json()
        if model not in REPLICATE_MODELS:
            return JSONResponse({"title": "Not found", "status": 404}, status_code=404)
        problems = schema_errors(fixture(REPLICATE_MODELS[model]), body.get("input", {}))
        if problems or set(body) - {"input", "webhook", "webhook_events_filter"}:
            return JSONResponse({"title": "Input validation failed", "detail": "; ".join(problems), "status": 422},
                                status_code=422)
        if (refusal := market.refusal(error)) is not None:
            return refusal
        cancel_after = request.headers.get("cancel-after", "").rstrip("s")
        job = _submitted(market, model, body["input"], request, float(cancel_after) if cancel_after else None, body)
        return JSONResponse(prediction(request, job), status_code=201)

    async def get(request: Request) -> Response:
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

    async def clip(request: Request) -> Response:
        return served_clip(market, request.path_params["jid"])

    return Starlette(routes=[
        Route("/clips/{jid}.mp4", clip, methods=["GET"]),
        Route("/v1/models/{model:path}/predictions", create, methods=["POST"]),
        Route("/v1/predictions/{pid}", get, methods=["GET"]),
        Route("/v1/predictions/{pid}/cancel", cancel, methods=["POST"]),
    ])
