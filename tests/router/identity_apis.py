"""Simulators of the identity APIs, on real HTTP (127.0.0.1): fal's queue running its trainers
(`fal-ai/flux-lora-fast-training`, `fal-ai/flux-lora-portrait-trainer`) and its identity
models (`fal-ai/flux-lora`, `fal-ai/flux-pulid`, `fal-ai/flux-pro/kontext/multi`),
Replicate's trainings API with its webhooks and `black-forest-labs/flux-dev-lora`
predictions, and Together's images API with `image_loras`.

Each input is checked against the schema the provider publishes for it
(fixtures/identity/*.schema.json, with jsonschema: unknown fields, types, enums, bounds;
the provider's 422 otherwise), and each answer has the published shape (fixtures/identity/,
README). A model given a LoRA by URL downloads it as the provider would, and fails without it;
Replicate's cog-flux reads the URL as `weights.make_download_url` did at a commit
(`TrainingScript.cog_flux`): from 2943a6f on the whole URL, before it without its query.
`TrainingScript` steers the trainings: how many polls they run, that they fail, that their
weights' URL expires once or always, how many callbacks a Replicate training's end sends.
"""

import asyncio
import base64
import hashlib
import hmac
import io
import json
import re
import tarfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.router.market import SECRET, _painted, fixture
from tests.router.queue_apis import _replicate_size

FAL_TRAINERS = {"fal-ai/flux-lora-fast-training": "identity/fal_flux_lora_fast_training_inputs.schema.json",
                "fal-ai/flux-lora-portrait-trainer": "identity/fal_flux_lora_portrait_trainer_inputs.schema.json"}
FAL_MODELS = {"fal-ai/flux-lora": "identity/fal_flux_lora_inputs.schema.json",
              "fal-ai/flux-pulid": "identity/fal_flux_pulid_inputs.schema.json",
              "fal-ai/flux-pro/kontext/multi": "identity/fal_kontext_multi_inputs.schema.json"}
REPLICATE_TRAINER = "identity/replicate_flux_dev_lora_trainer_inputs.schema.json"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"identity-webhooks-signing-key").decode()
# A safetensors file: its header's length, the JSON header, one tensor of four float32s.
_HEADER = json.dumps({"lora_unet_down.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
SAFETENSORS = len(_HEADER).to_bytes(8, "little") + _HEADER + b"\x00\x00\x80\x3f" * 4
KONTEXT_SIDES = {"1:1": (1024, 1024), "3:4": (896, 1152), "4:3": (1152, 896), "2:3": (832, 1216), "3:2": (1216, 832)}


def replicate_tar() -> bytes:
    """The trainer's output: a tar with the LoRA and its config, as ostris/flux-dev-lora-trainer pushes it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("output/flux_train_replicate/lora.safetensors", SAFETENSORS),
                           ("output/flux_train_replicate/config.yaml", b"job: extension\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class TrainingScript:
    polls: int = 1
    latency_s: float = 0.0
    fails: bool = False
    weights: str = "own"
    webhooks: int = 1
    cog_flux: str = "51e81e0"
    # The next polls of a training's status answered with these errors, in order (429, 503).
    poll_faults: list[int] = field(default_factory=list)


@dataclass
class Training:
    id: str
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    query: dict[str, str]
    submitted_at: float
    polls: int = 0
    canceled: bool = False

    def ended(self, script: TrainingScript) -> bool:
        if script.latency_s > 0:
            return time.monotonic() >= self.submitted_at + script.latency_s
        return self.polls > script.polls


@dataclass
class IdentityMarket:
    script: TrainingScript = field(default_factory=TrainingScript)
    trainings: dict[str, Training] = field(default_factory=dict)
    images: list[dict[str, Any]] = field(default_factory=list)
    downloads: Counter = field(default_factory=Counter)
    # What the models fetched of the LoRAs they were given: (url fetched, its status).
    fetched: list[tuple[str, int]] = field(default_factory=list)
    deleted_versions: list[str] = field(default_factory=list)
    callbacks: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    destinations: set[str] = field(default_factory=lambda: {"genline/identities"})
    # The versions Replicate trainings pushed, by model (`owner/name`) and version id: their weights' tar.
    versions: dict[str, dict[str, bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def version_weights(self, url: str) -> bytes | None:
        """The weights at `https://replicate.com/{owner}/{name}[/versions/{id}]/_weights`: a
        version's, or the latest version's of the model."""
        match = re.match(r"^https://replicate.com/([^/]+/[^/]+)(?:/versions/([^/]+))?/_weights$", url)
        pushed = self.versions.get(match[1], {}) if match else {}
        if not match or not pushed:
            return None
        return pushed.get(match[2]) if match[2] else list(pushed.values())[-1]

    def reset(self, script: TrainingScript | None = None) -> None:
        with self.lock:
            self.script = script or TrainingScript()
            for kept in (self.trainings, self.downloads):
                kept.clear()
            for listed in (self.images, self.fetched, self.deleted_versions, self.callbacks, self.errors):
                listed.clear()
            self.versions.clear()

    def train(self, model: str, body: dict[str, Any], request: Request) -> Training:
        training = Training(uuid.uuid4().hex[:26], model, body, dict(request.headers), dict(request.query_params),
                            time.monotonic())
        with self.lock:
            self.trainings[training.id] = training
        return training


def _invalid(schema_file: str, body: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(fixture(schema_file))
    return [f"{'.'.join(map(str, error.path)) or '(body)'}: {error.message}" for error in validator.iter_errors(body)]


def _unprocessable(errors: list[str]) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["body"], "msg": error, "type": "value_error"} for error in errors]},
                        status_code=422)


async def _fetch(market: IdentityMarket, url: str) -> int:
    """A LoRA fetched as a model's runner fetches it (no credentials of ours go with it)."""
    try:
        async with httpx.AsyncClient() as client:
            status = (await client.get(url, timeout=10)).status_code
    except httpx.HTTPError as error:
        status = 0  # unreachable: as a model whose download fails
        market.errors.append(repr(error))
    market.fetched.append((url, status))
    return status


def _weights_file(market: IdentityMarket, training_id: str, data: bytes) -> Response:
    market.downloads[training_id] += 1
    weights, tries = market.script.weights, market.downloads[training_id]
    if weights == "expire_always" or (weights == "expire_once" and tries == 1):
        return Response(b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                        status_code=403, media_type="application/xml")
    return Response(data, media_type="application/octet-stream")


def _image_file(request: Request) -> Response:
    width, height = int(request.path_params["w"]), int(request.path_params["h"])
    return Response(_painted(width, height, request.path_params["jid"], int(request.path_params["n"])),
                    media_type="image/png")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _image_url(request: Request, job: str, size: tuple[int, int], n: int) -> str:
    return f"{_base(request)}/images/{job}/{size[0]}/{size[1]}/{n}.png"


# ---- fal ----------------------------------------------------------------------------------


def fal_fault(status: int) -> Response:
    """A poll fal's edge refuses: 429 from fal's own servers (`x-fal-request-id`, a JSON detail), or
    an ingress 502-504 (nginx's HTML page, no `x-fal-request-id`), as fal_client tells them apart
    (fal-ai/fal@c6f0afa `projects/fal_client/src/fal_client/client.py` `_is_ingress_error`)."""
    if status == 429:
        return JSONResponse({"detail": "Too many requests"}, status_code=429,
                            headers={"x-fal-request-id": uuid.uuid4().hex, "retry-after": "0"})
    return Response(f"<html><head><title>{status}</title></head><body><center><h1>{status}</h1></center><hr>"
                    "<center>nginx</center></body></html>", status_code=status, media_type="text/html")


def fal_identity_app(market: IdentityMarket) -> Starlette:
    async def submit(request: Request) -> Response:
        if request.headers.get("authorization") != f"Key {SECRET}":
            return JSONResponse({"detail": "Unauthorized"}, status_code=401)
        model, body = request.path_params["model"], await request.json()
        schema = FAL_TRAINERS.get(model) or FAL_MODELS.get(model)
        if schema is None:
            return JSONResponse({"detail": f"Application '{model}' not found"}, status_code=404)
        if errors := _invalid(schema, body):
            return _unprocessable(errors)
        if model in FAL_TRAINERS:
            job_id = market.train(model, body, request).id
        else:
            job_id = uuid.uuid4().hex
            market.images.append({"id": job_id, "model": model, "body": body, "result": await _fal_image(request,
                                                                                                          body, job_id)})
        urls = f"{_base(request)}/{'/'.join(model.split('/')[:2])}/requests/{job_id}"
        return JSONResponse(fixture("fal/submit.json") | {"request_id": job_id, "response_url": urls,
                                                         "status_url": f"{urls}/status", "cancel_url": f"{urls}/cancel"})

    async def _fal_image(request: Request, body: dict[str, Any], job_id: str) -> dict[str, Any]:
        for lora in body.get("loras", []):
            if await _fetch(market, lora["path"]) != 200:
                return {"error": f"could not download the LoRA at {lora['path']}"}
        if "reference_image_url" in body and not body["reference_image_url"].startswith("data:image/"):
            return {"error": "the reference image is not an image"}
        size = body.get("image_size") or {}
        made = KONTEXT_SIDES.get(body.get("aspect_ratio", ""), (size.get("width", 512), size.get("height", 512)))
        count = body.get("num_images", 1)
        return {"images": [{"url": _image_url(request, job_id, made, n), "content_type": "image/png",
                            "width": made[0], "height": made[1]} for n in range(count)],
                "seed": body.get("seed", 0), "has_nsfw_concepts": [False] * count, "timings": {"inference": 1.1},
                "prompt": body["prompt"]}

    async def status(request: Request) -> Response:
        rid = request.path_params["rid"]
        training = market.trainings.get(rid)
        if training is None:
            image = next((i for i in market.images if i["id"] == rid), None)
            if image is None:
                return JSONResponse({"detail": "Request not found"}, status_code=404)
            done = fixture("fal/status_completed.json")
            return JSONResponse(done | ({"error": image["result"]["error"], "error_type": "runner_error"}
                                        if "error" in image["result"] else {}))
        if market.script.poll_faults:
            return fal_fault(market.script.poll_faults.pop(0))
        training.polls += 1
        if training.canceled or training.ended(market.script):
            done = fixture("fal/status_completed.json")
            failed = training.canceled or market.script.fails
            return JSONResponse(done | ({"error": "training failed", "error_type": "internal_error"} if failed else {}))
        # 202 while the request is queued or running, 200 once it is completed: fal's queue, as
        # fal-ai/fal@c6f0afa `projects/fal/tests/unit/cli/test_api.py` (`FakeQueue`) answers a poll.
        return JSONResponse(fixture("fal/status_in_queue.json" if training.polls == 1 else "fal/status_in_progress.json"),
                            status_code=202)

    async def result(request: Request) -> Response:
        rid = request.path_params["rid"]
        if rid in market.trainings:
            file = f"{_base(request)}/files/{rid}/pytorch_lora_weights.safetensors"
            answer = fixture("identity/fal_training_result.json")
            answer["diffusers_lora_file"] |= {"url": file, "file_size": len(SAFETENSORS)}
            answer["config_file"] |= {"url": f"{_base(request)}/files/{rid}/config.json"}
            return JSONResponse(answer, headers={"x-fal-request-id": rid})
        image = next((i for i in market.images if i["id"] == rid), None)
        if image is None or "error" in image["result"]:
            return JSONResponse({"detail": "Request failed"}, status_code=500 if image else 404,
                                headers={"x-fal-request-id": rid})
        return JSONResponse(image["result"], headers={"x-fal-request-id": rid})

    async def cancel(request: Request) -> Response:
        training = market.trainings.get(request.path_params["rid"])
        if training is None or training.ended(market.script):
            return JSONResponse(fixture("fal/cancel_already_completed.json"), status_code=400)
        training.canceled = True
        return JSONResponse(fixture("fal/cancel_requested.json"), status_code=202)

    async def weights(request: Request) -> Response:
        return _weights_file(market, request.path_params["rid"], SAFETENSORS)

    return Starlette(routes=[
        Route("/files/{rid}/pytorch_lora_weights.safetensors", weights),
        Route("/images/{jid}/{w:int}/{h:int}/{n:int}.png", _image_file),
        Route("/{app:path}/requests/{rid}/status", status),
        Route("/{app:path}/requests/{rid}/cancel", cancel, methods=["PUT"]),
        Route("/{app:path}/requests/{rid}", result),
        Route("/{model:path}", submit, methods=["POST"]),
    ])


# ---- Replicate ----------------------------------------------------------------------------


def cog_flux_url(url: str, commit: str) -> str:
    """What cog-flux downloads for `lora_weights` (replicate/cog-flux `weights.py`
    `make_download_url`, the same at 1d75bdd and 51e81e0 but for a `.safetensors` URL's query):
    a `.safetensors` URL (at 1d75bdd the part before `?`, from 2943a6f on the whole URL), a
    Replicate model `owner/name` (its latest version's weights) or version `owner/name/version`
    (`https://replicate.com/…/_weights`), a `.tar` on replicate.delivery; anything else is refused
    as the loader refuses it. `owner/name:version` reads as a model named `name:version`."""
    if url.startswith("data:"):
        return url
    safetensors = r"^(https?://.*\.safetensors)(?:\?|$)" if commit == "1d75bdd" else r"^(https?://.*\.safetensors(\?.*)?)$"
    if match := re.match(safetensors, url):
        return match[1]
    if match := re.match(r"^(?:https?://replicate.com/)?([^/]+)/([^/]+)/?$", url):
        return f"https://replicate.com/{match[1]}/{match[2]}/_weights"
    if match := re.match(r"^(?:https?://replicate.com/)?([^/]+)/([^/]+)/(?:versions/)?([^/]+)/?$", url):
        return f"https://replicate.com/{match[1]}/{match[2]}/versions/{match[3]}/_weights"
    if match := re.match(r"^(https?://replicate.delivery/.*\.tar)$", url):
        return match[1]
    raise ValueError("Failed to parse URL. Expected either: * Replicate model in the format <owner>/<username> or"
                     " <owner>/<username>/<version> * … * Arbitrary .safetensors URLs from the Internet")


def replicate_identity_app(market: IdentityMarket) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {SECRET}"

    async def create_training(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
        body = await request.json()
        if errors := _invalid("identity/replicate_training_request.schema.json", body):
            return JSONResponse({"title": "Invalid request", "detail": "; ".join(errors), "status": 422},
                                status_code=422)
        if body["destination"] not in market.destinations:
            return JSONResponse(fixture("identity/replicate_destination_missing.json"), status_code=404)
        if errors := _invalid(REPLICATE_TRAINER, body["input"]):
            return JSONResponse({"title": "Input validation failed", "detail": "; ".join(errors), "status": 422},
                                status_code=422)
        p = request.path_params
        training = market.train(f"{p['owner']}/{p['name']}:{p['version']}", body, request)
        if body.get("webhook") and market.script.latency_s > 0:
            asyncio.get_running_loop().create_task(_call_back(request, training, body["webhook"]))
        created = fixture("identity/replicate_training_created.json")
        # As the recorded answer: a new training's urls are under /v1/predictions/.
        base = f"{_base(request)}/v1/predictions/{training.id}"
        return JSONResponse(created | {"id": training.id, "model": f"{p['owner']}/{p['name']}",
                                       "version": p["version"], "input": body["input"],
                                       "urls": {"get": base, "cancel": f"{base}/cancel"}}, status_code=201)

    def training_json(request: Request, training: Training) -> dict[str, Any]:
        base = f"{_base(request)}/v1/trainings/{training.id}"
        urls = {"get": base, "cancel": f"{base}/cancel"}
        if training.canceled:
            return fixture("identity/replicate_training_canceled.json") | {"id": training.id, "urls": urls}
        if not training.ended(market.script):
            return fixture("identity/replicate_training_processing.json") | {"id": training.id, "urls": urls}
        answer = fixture("identity/replicate_training_succeeded.json") | {"id": training.id, "urls": urls}
        if market.script.fails:
            return answer | {"status": "failed", "output": None, "error": "CUDA out of memory"}
        version = hashlib.sha256(training.id.encode()).hexdigest()
        with market.lock:  # the training pushed a version of its destination
            market.versions.setdefault(training.body["destination"], {})[version] = replicate_tar()
        answer["output"] = {"version": f"{training.body['destination']}:{version}",
                            "weights": f"{_base(request)}/files/{training.id}/trained_model.tar"}
        return answer

    async def get_training(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
        training = market.trainings.get(request.path_params["tid"])
        if training is None:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        training.polls += 1
        return JSONResponse(training_json(request, training))

    async def cancel_training(request: Request) -> Response:
        training = market.trainings.get(request.path_params["tid"])
        if training is None:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        if not training.ended(market.script):
            training.canceled = True
        return JSONResponse(training_json(request, training))

    async def _call_back(request: Request, training: Training, url: str) -> None:
        await asyncio.sleep(market.script.latency_s + 0.05)
        body = json.dumps(training_json(request, training)).encode()
        async with httpx.AsyncClient() as client:
            for _ in range(market.script.webhooks):
                answer = await client.post(url, content=body, headers=signed(body), timeout=5)
                market.callbacks.append(answer.status_code)

    async def delete_version(request: Request) -> Response:
        p = request.path_params
        market.deleted_versions.append(f"{p['owner']}/{p['name']}:{p['vid']}")
        return Response(status_code=204)

    async def predict(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
        body = await request.json()
        given = body.get("input", {})
        if errors := _invalid("identity/replicate_flux_dev_lora_inputs.schema.json", given):
            return JSONResponse({"title": "Input validation failed", "detail": "; ".join(errors), "status": 422},
                                status_code=422)
        pid = uuid.uuid4().hex[:26]
        error = await _lora_error(given["lora_weights"]) if given.get("lora_weights") else None
        size = _replicate_size(given)
        market.images.append({"id": pid, "model": request.path_params["name"], "body": given, "error": error,
                              "urls": [_image_url(request, pid, size, n) for n in range(given.get("num_outputs", 1))]})
        return JSONResponse(prediction(request, market.images[-1]), status_code=201)

    async def _lora_error(weights: str) -> str | None:
        """Why cog-flux's loader cannot load `weights`, if it cannot."""
        try:
            url = cog_flux_url(weights, market.script.cog_flux)
        except ValueError as error:
            return str(error)
        if url.startswith("https://replicate.com/"):  # a Replicate model's or version's weights, from Replicate itself
            found = market.version_weights(url)
            market.fetched.append((weights, 200 if found is not None else 404))
            return None if found is not None else "Failed to download tarball: pget exited with status 1 (404)"
        if await _fetch(market, url) != 200:
            return "Weights not found at the supplied URL. Please check the URL."
        return None

    def prediction(request: Request, made: dict[str, Any]) -> dict[str, Any]:
        base = f"{_base(request)}/v1/predictions/{made['id']}"
        failed = made["error"] is not None
        return fixture("replicate/prediction_succeeded.json") | {
            "id": made["id"], "status": "failed" if failed else "succeeded", "error": made["error"],
            "output": None if failed else made["urls"], "urls": {"get": base, "cancel": f"{base}/cancel"},
            "metrics": {"predict_time": 1.5}}

    async def get_prediction(request: Request) -> Response:
        made = next((m for m in market.images if m["id"] == request.path_params["pid"]), None)
        return JSONResponse(prediction(request, made)) if made else JSONResponse({"detail": "Not found."}, 404)

    async def weights(request: Request) -> Response:
        return _weights_file(market, request.path_params["tid"], replicate_tar())

    return Starlette(routes=[
        Route("/v1/models/{owner}/{name}/versions/{version}/trainings", create_training, methods=["POST"]),
        Route("/v1/trainings/{tid}", get_training),
        Route("/v1/trainings/{tid}/cancel", cancel_training, methods=["POST"]),
        Route("/v1/models/{owner}/{name}/versions/{vid}", delete_version, methods=["DELETE"]),
        Route("/v1/models/{owner}/{name}/predictions", predict, methods=["POST"]),
        Route("/v1/predictions/{pid}", get_prediction),
        Route("/files/{tid}/trained_model.tar", weights),
        Route("/images/{jid}/{w:int}/{h:int}/{n:int}.png", _image_file),
    ])


def signed(body: bytes) -> dict[str, str]:
    """Standard Webhooks headers for `body`, as Replicate signs its callbacks."""
    webhook_id, timestamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body,
                                          hashlib.sha256).digest()).decode()
    return {"webhook-id": webhook_id, "webhook-timestamp": timestamp, "webhook-signature": f"v1,{signature}",
            "content-type": "application/json"}


# ---- Together -----------------------------------------------------------------------------


def together_identity_app(market: IdentityMarket) -> Starlette:
    async def generate(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return JSONResponse({"error": {"message": "Invalid API key provided", "type": "invalid_request_error"}},
                                status_code=401)
        body = await request.json()
        if errors := _invalid("identity/together_flux_lora_request.schema.json", body):
            return JSONResponse({"error": {"message": "; ".join(errors), "type": "invalid_request_error"}},
                                status_code=400)
        for lora in body.get("image_loras", []):
            if await _fetch(market, lora["path"]) != 200:
                return JSONResponse({"error": {"message": "could not load the LoRA", "type": "invalid_request_error"}},
                                    status_code=400)
        job_id = uuid.uuid4().hex
        market.images.append({"id": job_id, "model": body["model"], "body": body})
        size = (body.get("width", 1024), body.get("height", 1024))
        answer = fixture("together/images_response.json") | {"model": body["model"]}
        answer["data"] = [{"index": n, "url": _image_url(request, job_id, size, n)} for n in range(body.get("n", 1))]
        return JSONResponse(answer)

    return Starlette(routes=[Route("/v1/images/generations", generate, methods=["POST"]),
                             Route("/images/{jid}/{w:int}/{h:int}/{n:int}.png", _image_file)])
