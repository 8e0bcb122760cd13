"""Simulators of the queue APIs: Replicate's predictions and fal's queue, as each documents them."""

import math
import re

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.router.market import SECRET, Market, SimJob, _base, _data_uri_image, file_routes, fixture

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
        state = market.state(job, deadline_to_start=True)
        url = f"{_base(request)}/{request.path_params['app']}/requests/{job.id}"
        if state == "running":  # 202 until the request is completed, as fal's queue answers (fixtures/README.md)
            return JSONResponse(fixture("fal/status_in_progress.json") | {"response_url": url}, status_code=202)
        body = fixture("fal/status_completed.json") | {"response_url": url}
        if state in ("failed", "canceled", "aborted", "interrupted"):
            body |= {"error": "Request failed", "error_type": "internal_error"}
        return JSONResponse(body)

    async def result(request: Request) -> Response:
        job = market.jobs.get(request.path_params["rid"])
        if job is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        state = market.state(job, deadline_to_start=True)
        if state == "running":
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        if state == "deadline":
            # No runner started it within its X-Fal-Request-Timeout (fal's "common parameters").
            return JSONResponse({"detail": "Request timed out", "error_type": "startup_timeout"}, status_code=504,
                                headers={"x-fal-request-timeout-type": "user", "x-fal-error-type": "startup_timeout"})
        if state not in ("succeeded", "moderated"):
            return JSONResponse({"detail": "Internal server error"}, status_code=500,
                                headers={"x-fal-request-id": job.id})
        if job.input_image is not None:
            return JSONResponse({"image": {"url": market.image_url(_base(request), job, 0)}})
        images = [{"url": market.image_url(_base(request), job, n), "content_type": "image/png",
                   "file_name": f"{n}.png", "width": job.width, "height": job.height} for n in range(job.count)]
        return JSONResponse(fixture("fal/result.json") | {
            "images": images, "seed": job.seed, "timings": {"inference": 0.5 * job.count},
            "has_nsfw_concepts": [market.script.terminal == "moderated" or n < market.script.flagged
                                  for n in range(job.count)], "prompt": job.prompt})

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
