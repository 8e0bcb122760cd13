"""Simulators of the image APIs that answer a request with its images, or with a task to poll:
OpenAI Images (and compatible servers), Black Forest Labs, Stability AI and Runware."""

import email.parser
import email.policy
import math
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.router.market import SECRET, Market, _base, _finished_or_abandoned, file_routes, fixture

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
        formats = ("base64", "url") if compatible else ("b64_json", "url")
        if body.get("response_format", formats[-1]) not in formats:
            return JSONResponse({"error": {"message": f"Invalid response_format {body['response_format']!r}: one of"
                                                      f" {list(formats)}", "type": "invalid_request_error",
                                           "param": "response_format", "code": None}}, status_code=400)
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
        return JSONResponse(fixture("openai/images_response.json") | {
            "data": data, "size": size, "quality": body.get("quality", "auto"),
            "usage": image_usage(body["prompt"], size, body.get("quality", "medium"), job.count)})

    path = "/v1/images/generations"
    return Starlette(routes=[Route(path, generate, methods=["POST"]), *file_routes(market)])


# Image tokens gpt-image-1 makes per image, by quality and size (OpenAI's image generation
# guide, "Cost and latency"): what its per-image prices are the output-token price of.
OUTPUT_TOKENS = {("low", "1024x1024"): 272, ("low", "1024x1536"): 408, ("low", "1536x1024"): 400,
                 ("medium", "1024x1024"): 1056, ("medium", "1024x1536"): 1584, ("medium", "1536x1024"): 1568,
                 ("high", "1024x1024"): 4160, ("high", "1024x1536"): 6240, ("high", "1536x1024"): 6208}


def image_usage(prompt: str, size: str, quality: str, count: int) -> dict:
    """`usage` as gpt-image-1 reports it: the prompt's text tokens (about one per four
    characters) and the image tokens made."""
    text = max(1, len(prompt) // 4)
    out = OUTPUT_TOKENS.get((quality, size), 1056) * count
    return {"input_tokens": text, "output_tokens": out, "total_tokens": text + out,
            "input_tokens_details": {"text_tokens": text, "image_tokens": 0}}


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
        if state == "moderated":
            # A safety filter's refusal comes as the task's own result, with its status.
            return JSONResponse({"data": [{"taskType": "imageInference", "taskUUID": job.id, "status": "error",
                                           "code": "nsfwContentDetected",
                                           "message": "NSFW content detected in the generated image."}]})
        if state == "task_error":
            return JSONResponse({"data": [{"taskType": "imageInference", "taskUUID": job.id, "status": "error",
                                           "code": "inferenceError", "message": "The inference failed."}]})
        if state != "succeeded":
            return JSONResponse({"errors": [{"code": "inferenceFailed", "message": state, "status": "error",
                                             "taskUUID": job.id}]})
        item = fixture("runware/get_response_success.json")["data"][0]
        # Images are served from another host than the API (im.runware.ai): no key goes there.
        base = market.foreign_url if market.script.output == "own" and market.foreign_url else _base(request)
        return JSONResponse({"data": [item | {"taskUUID": job.id, "imageUUID": f"{job.id}-{n}",
                                              "imageURL": market.image_url(base, job, n), "seed": (job.seed or 0) + n,
                                              "cost": 0.0013} for n in range(job.count)]})

    return Starlette(routes=[Route("/v1", tasks, methods=["POST"]), *file_routes(market)])
