"""Simulators of the identity APIs, on real HTTP (127.0.0.1): fal's queue running its trainers
(`fal-ai/flux-lora-fast-training`, `fal-ai/flux-lora-portrait-trainer`) and its identity
models (`fal-ai/flux-lora`, `fal-ai/flux-pulid`, `fal-ai/flux-pro/kontext/multi`) with fal's
storage; Replicate's trainings API with its webhooks, its files API and
`black-forest-labs/flux-dev-lora` predictions; Together's images API with `image_loras`.

Each input is checked against the schema the provider publishes for it
(fixtures/identity/*.schema.json, with jsonschema: unknown fields, types, enums, bounds;
the provider's 422 otherwise), and each answer has the published shape (fixtures/identity/,
README). Every request body is kept, so a test can find an inline `data:` URI anywhere in it.

What the trainers and models make (identity_painting.py): a trainer downloads the photos' zip it
is given, as the provider's runner does, and learns their faces into a safetensors LoRA; a LoRA
model downloads its LoRA and paints that face where the prompt names the trigger word; a
reference model paints the face of the photos it downloads; each in the scene of the style the
prompt names. cog-flux reads `lora_weights` as `weights.make_download_url` does at a commit
(`TrainingScript.cog_flux`): from 2943a6f on a `.safetensors` URL whole, before it without its
query; a Replicate version as `owner/name/version`.

`TrainingScript` steers them: how many polls a training runs (or for how long), that it fails,
that its weights' URL expires once or always or serves a file cut short, how many callbacks its
end sends, which status
polls are answered 429 or 503 first (trainings' and models'), how many progress lines a
Replicate training logs.
"""

import asyncio
import base64
import email.parser
import email.policy
import hashlib
import io
import json
import re
import tarfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.router.providers.local.portraits.faces import LocalWeights, NoFace
from tests.router.callback_signing import fal_signed, jwks_of, replicate_signed
from tests.router.identity_painting import faces_of_lora, faces_of_photos, lora_file, portrait, trained_faces
from tests.router.market import SECRET, _painted, fixture
from tests.router.queue_apis import _replicate_size

FAL_TRAINERS = {"fal-ai/flux-lora-fast-training": "identity/fal_flux_lora_fast_training_inputs.schema.json",
                "fal-ai/flux-lora-portrait-trainer": "identity/fal_flux_lora_portrait_trainer_inputs.schema.json"}
FAL_MODELS = {"fal-ai/flux-lora": "identity/fal_flux_lora_inputs.schema.json",
              "fal-ai/flux-pulid": "identity/fal_flux_pulid_inputs.schema.json",
              "fal-ai/flux-pro/kontext/multi": "identity/fal_kontext_multi_inputs.schema.json"}
REPLICATE_TRAINER = "identity/replicate_flux_dev_lora_trainer_inputs.schema.json"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"identity-webhooks-signing-key").decode()
# A LoRA of nobody: weights a test hands a model itself.
SAFETENSORS = lora_file(None)
KONTEXT_SIDES = {"1:1": (1024, 1024), "3:4": (896, 1152), "4:3": (1152, 896), "2:3": (832, 1216), "3:2": (1216, 832)}


def replicate_tar(lora: bytes = SAFETENSORS) -> bytes:
    """The trainer's output: a tar with the LoRA and its config, as ostris/flux-dev-lora-trainer pushes it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("output/flux_train_replicate/lora.safetensors", lora),
                           ("output/flux_train_replicate/config.yaml", b"job: extension\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def lora_of_tar(data: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        [member] = [m for m in archive.getmembers() if m.name.endswith(".safetensors")]
        extracted = archive.extractfile(member)
        assert extracted is not None
        return extracted.read()


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
    # The same for the models' predictions and requests.
    model_poll_faults: list[int] = field(default_factory=list)
    # The progress lines a Replicate training logs (None: one a step, as ostris' trainer logs).
    log_lines: int | None = None


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
    lora: bytes | None = None
    error: str | None = None
    # Set once the trainer has read the photos and learnt their faces (its runner does it after the submit).
    learnt: threading.Event = field(default_factory=threading.Event)

    def ended(self, script: TrainingScript) -> bool:
        if script.latency_s > 0:
            return time.monotonic() >= self.submitted_at + script.latency_s
        return self.polls > script.polls

    def failed(self, script: TrainingScript) -> str | None:
        return "training failed" if script.fails else self.error

    async def finished(self) -> None:
        """Wait until the runner has learnt the photos (an end is answered with its LoRA)."""
        await asyncio.to_thread(self.learnt.wait, 60)

    def still_learning(self, script: TrainingScript) -> bool:
        """Whether a poll finds it at its end but still learning: answered as running and not
        counted (the script's polls count those a training runs, whatever the machine's speed)."""
        if self.ended(script) and not self.canceled and not self.learnt.is_set():
            self.polls -= 1
            return True
        return False


@dataclass
class Hosted:
    """A file uploaded to the provider's storage."""

    data: bytes
    name: str
    content_type: str
    headers: dict[str, str]


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
    # Files uploaded to the provider's storage (fal's, Replicate's files API), by id: kept across
    # resets, as a provider keeps them until they expire or are deleted; those uploaded since the
    # last reset, and those deleted.
    files: dict[str, Hosted] = field(default_factory=dict)
    uploaded: list[str] = field(default_factory=list)
    deleted_files: list[str] = field(default_factory=list)
    # Every request body received (JSON), to look for inline data in.
    bodies: list[Any] = field(default_factory=list)
    # The pictures the models painted, by request and index.
    pictures: dict[tuple[str, int], bytes] = field(default_factory=dict)
    # Trainings being learnt (kept so that their tasks are not collected).
    learning: set[asyncio.Task[None]] = field(default_factory=set)
    # The key fal signs its callbacks with (its JWKS is served at /.well-known/jwks.json).
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
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
            for kept in (self.trainings, self.downloads, self.versions, self.pictures):
                kept.clear()
            for listed in (self.images, self.fetched, self.deleted_versions, self.callbacks, self.errors,
                           self.uploaded, self.deleted_files, self.bodies):
                listed.clear()

    def train(self, model: str, body: dict[str, Any], request: Request) -> Training:
        training = Training(uuid.uuid4().hex[:26], model, body, dict(request.headers), dict(request.query_params),
                            time.monotonic())
        with self.lock:
            self.trainings[training.id] = training
        return training

    def inline(self) -> list[str]:
        """Every `data:` URI any request carried, by where it was."""
        return [where for body in self.bodies for where in _data_uris(body, "")]

    def host(self, data: bytes, *, name: str, content_type: str, request: Request) -> str:
        file_id = uuid.uuid4().hex[:24]
        with self.lock:
            self.files[file_id] = Hosted(data, name, content_type, dict(request.headers))
            self.uploaded.append(file_id)
        return file_id

    def uploads(self) -> dict[str, Hosted]:
        """The files uploaded since the last reset and still kept, by id."""
        return {file_id: self.files[file_id] for file_id in self.uploaded if file_id in self.files}


def _data_uris(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [where] if value.startswith("data:") else []
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _data_uris(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [found for n, item in enumerate(value) for found in _data_uris(item, f"{where}[{n}]")]
    return []


async def _json_body(market: IdentityMarket, request: Request) -> Any:
    body = await request.json()
    market.bodies.append(body)
    return body


def _invalid(schema_file: str, body: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(fixture(schema_file))
    return [f"{'.'.join(map(str, error.path)) or '(body)'}: {error.message}" for error in validator.iter_errors(body)]


def _unprocessable(errors: list[str]) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["body"], "msg": error, "type": "value_error"} for error in errors]},
                        status_code=422)


async def _download(market: IdentityMarket, url: str) -> tuple[int, bytes]:
    """A file fetched as a provider's runner fetches it (no credentials of ours go with it)."""
    if url.startswith("data:"):  # the providers take data: URIs too; the tests look for them in `bodies`
        return 200, base64.b64decode(url.partition(",")[2])
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(url, timeout=10)
        return response.status_code, response.content
    except httpx.HTTPError as error:
        market.errors.append(repr(error))
        return 0, b""  # unreachable: as a runner whose download fails


async def _fetch(market: IdentityMarket, url: str) -> tuple[int, bytes]:
    """A LoRA fetched as a model's runner fetches it, written down."""
    status, data = await _download(market, url)
    market.fetched.append((url, status))
    return status, data


def learn(market: IdentityMarket, training: Training, photos_url: str, trigger_word: str, resolve: Any = None) -> None:
    """Start the training as its runner does once it was submitted: fetch the photos' zip (the
    provider's own file, or a download) and learn their faces into a LoRA (or fail with why)."""
    async def learning() -> None:
        try:
            hosted = resolve(photos_url) if resolve is not None else None
            status, data = (200, hosted) if hosted is not None else await _download(market, photos_url)
            if status != 200:
                training.error = f"could not download the training images ({status})"
                return
            faces = await asyncio.to_thread(trained_faces, data, trigger_word)
            training.lora = lora_file(faces)
        except (NoFace, ValueError, zipfile.BadZipFile) as error:
            training.error = f"the training images: {error}"
        finally:
            training.learnt.set()

    market.learning.add(task := asyncio.get_running_loop().create_task(learning()))
    task.add_done_callback(market.learning.discard)


def _weights_file(market: IdentityMarket, training_id: str, data: bytes) -> Response:
    market.downloads[training_id] += 1
    weights, tries = market.script.weights, market.downloads[training_id]
    if weights == "expire_always" or (weights == "expire_once" and tries == 1):
        return Response(b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                        status_code=403, media_type="application/xml")
    if weights == "cut_short":  # a file whose last tensor is cut off
        return Response(data[: len(data) // 2], media_type="application/octet-stream")
    return Response(data, media_type="application/octet-stream")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _paint(market: IdentityMarket, job: str, *, faces: LocalWeights | None, body: dict[str, Any],
                 size: tuple[int, int], count: int) -> None:
    for n in range(count):
        market.pictures[(job, n)] = await asyncio.to_thread(portrait, faces=faces, prompt=body.get("prompt", ""), size=size,
                                                            seed=int(body.get("seed") or 0), n=n)


def _picture(market: IdentityMarket, request: Request) -> Response:
    found = market.pictures.get((request.path_params["jid"], int(request.path_params["n"])))
    return Response(found, media_type="image/jpeg") if found else Response(status_code=404)


def _picture_url(request: Request, job: str, n: int) -> str:
    return f"{_base(request)}/pictures/{job}/{n}.jpg"


def _image_file(request: Request) -> Response:
    width, height = int(request.path_params["w"]), int(request.path_params["h"])
    return Response(_painted(width, height, request.path_params["jid"], int(request.path_params["n"])),
                    media_type="image/png")


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
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Key {SECRET}"

    async def submit(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Unauthorized"}, status_code=401)
        model, body = request.path_params["model"], await _json_body(market, request)
        schema = FAL_TRAINERS.get(model) or FAL_MODELS.get(model)
        if schema is None:
            return JSONResponse({"detail": f"Application '{model}' not found"}, status_code=404)
        if errors := _invalid(schema, body):
            return _unprocessable(errors)
        if model in FAL_TRAINERS:
            training = market.train(model, body, request)
            trigger = body.get("trigger_word") or body.get("trigger_phrase") or ""
            learn(market, training, body["images_data_url"], trigger, resolve=own_file(request))
            job_id = training.id
            if "fal_webhook" in request.query_params and market.script.latency_s > 0:
                asyncio.get_running_loop().create_task(_call_back(request, training, request.query_params["fal_webhook"]))
        else:  # run by a runner after the submit is answered
            job_id = uuid.uuid4().hex
            made: dict[str, Any] = {"id": job_id, "model": model, "body": body, "polls": 0, "result": None}
            market.images.append(made)
            market.learning.add(task := asyncio.get_running_loop().create_task(_run_image(request, made)))
            task.add_done_callback(market.learning.discard)
        urls = f"{_base(request)}/{'/'.join(model.split('/')[:2])}/requests/{job_id}"
        return JSONResponse(fixture("fal/submit.json") | {"request_id": job_id, "response_url": urls,
                                                         "status_url": f"{urls}/status", "cancel_url": f"{urls}/cancel"})

    def own_file(request: Request) -> Any:
        def resolve(url: str) -> bytes | None:
            match = re.match(rf"^{re.escape(_base(request))}/files/uploaded/([0-9a-f]+)/", url)
            hosted = market.files.get(match[1]) if match else None
            return hosted.data if hosted is not None else None
        return resolve

    async def _faces_given(body: dict[str, Any]) -> LocalWeights | None:
        """The face the model is given: its LoRA's, or its reference photos'. ValueError: it cannot read them."""
        for lora in body.get("loras", []):
            status, data = await _fetch(market, lora["path"])
            if status != 200:
                raise ValueError(f"could not download the LoRA at {lora['path']}")
            return faces_of_lora(data)
        references = [body["reference_image_url"]] if "reference_image_url" in body else body.get("image_urls", [])
        photos = []
        for url in references:
            status, data = await _download(market, url)
            if status != 200:
                raise ValueError(f"could not download the image at {url}")
            photos.append(data)
        return await asyncio.to_thread(faces_of_photos, tuple(photos)) if photos else None

    async def _run_image(request: Request, made: dict[str, Any]) -> None:
        made["result"] = await _fal_image(request, made["body"], made["id"])

    async def _fal_image(request: Request, body: dict[str, Any], job_id: str) -> dict[str, Any]:
        try:
            faces = await _faces_given(body)
        except (ValueError, NoFace) as error:
            return {"error": str(error)}
        size = body.get("image_size") or {}
        made = KONTEXT_SIDES.get(body.get("aspect_ratio", ""), (size.get("width", 512), size.get("height", 512)))
        count = body.get("num_images", 1)
        await _paint(market, job_id, faces=faces, body=body, size=made, count=count)
        return {"images": [{"url": _picture_url(request, job_id, n), "content_type": "image/jpeg",
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
            if market.script.model_poll_faults:
                return fal_fault(market.script.model_poll_faults.pop(0))
            image["polls"] += 1
            if image["polls"] == 1 or image["result"] is None:  # queued at the first look, running until painted
                return JSONResponse(fixture("fal/status_in_queue.json" if image["polls"] == 1
                                            else "fal/status_in_progress.json"), status_code=202)
            done = fixture("fal/status_completed.json")
            return JSONResponse(done | ({"error": image["result"]["error"], "error_type": "runner_error"}
                                        if "error" in image["result"] else {}))
        if market.script.poll_faults:
            return fal_fault(market.script.poll_faults.pop(0))
        training.polls += 1
        if training.still_learning(market.script):
            return JSONResponse(fixture("fal/status_in_progress.json"), status_code=202)
        if training.canceled or training.ended(market.script):
            done = fixture("fal/status_completed.json")
            failed = "canceled" if training.canceled else training.failed(market.script)
            return JSONResponse(done | ({"error": failed, "error_type": "internal_error"} if failed else {}))
        # 202 while the request is queued or running, 200 once it is completed: fal's queue, as
        # fal-ai/fal@c6f0afa `projects/fal/tests/unit/cli/test_api.py` (`FakeQueue`) answers a poll.
        return JSONResponse(fixture("fal/status_in_queue.json" if training.polls == 1 else "fal/status_in_progress.json"),
                            status_code=202)

    async def result(request: Request) -> Response:
        rid = request.path_params["rid"]
        if rid in market.trainings:
            return JSONResponse(training_result(request, market.trainings[rid]), headers={"x-fal-request-id": rid})
        image = next((i for i in market.images if i["id"] == rid), None)
        if image is not None and image["result"] is None:
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400, headers={"x-fal-request-id": rid})
        if image is None or "error" in image["result"]:
            return JSONResponse({"detail": "Request failed"}, status_code=500 if image else 404,
                                headers={"x-fal-request-id": rid})
        return JSONResponse(image["result"], headers={"x-fal-request-id": rid})

    def training_result(request: Request, training: Training) -> dict[str, Any]:
        file = f"{_base(request)}/files/{training.id}/pytorch_lora_weights.safetensors"
        answer = fixture("identity/fal_training_result.json")
        answer["diffusers_lora_file"] |= {"url": file, "file_size": len(training.lora or b"")}
        answer["config_file"] |= {"url": f"{_base(request)}/files/{training.id}/config.json"}
        return answer

    async def _call_back(request: Request, training: Training, url: str) -> None:
        """fal's callback at the request's end (https://docs.fal.ai/model-endpoints/webhooks: the
        result as `payload`, or `ERROR` and its `error`), signed with fal's Ed25519 key."""
        await asyncio.sleep(market.script.latency_s + 0.05)
        await training.finished()
        failed = training.failed(market.script)
        body = json.dumps(fixture("fal/webhook_ok.json") | {
            "request_id": training.id, "gateway_request_id": training.id, "status": "ERROR" if failed else "OK",
            "payload": None if failed else training_result(request, training)} | ({"error": failed} if failed else {}))
        async with httpx.AsyncClient() as client:
            for _ in range(market.script.webhooks):
                answer = await client.post(url, content=body.encode(), timeout=5, headers={
                    "content-type": "application/json", **fal_signed(market.signing_key, body.encode(), training.id)})
                market.callbacks.append(answer.status_code)

    async def cancel(request: Request) -> Response:
        training = market.trainings.get(request.path_params["rid"])
        if training is None or training.ended(market.script):
            return JSONResponse(fixture("fal/cancel_already_completed.json"), status_code=400)
        training.canceled = True
        return JSONResponse(fixture("fal/cancel_requested.json"), status_code=202)

    async def weights(request: Request) -> Response:
        training = market.trainings[request.path_params["rid"]]
        return _weights_file(market, training.id, training.lora or b"")

    async def initiate(request: Request) -> Response:
        """fal's storage: where an upload goes (fal_client `_upload_via_storage`)."""
        if not authorized(request):
            return JSONResponse({"detail": "Unauthorized"}, status_code=401)
        asked = await _json_body(market, request)
        file_id = market.host(b"", name=asked["file_name"], content_type=asked["content_type"], request=request)
        return JSONResponse({"upload_url": f"{_base(request)}/storage/uploads/{file_id}",
                             "file_url": f"{_base(request)}/files/uploaded/{file_id}/{asked['file_name']}"})

    async def put_upload(request: Request) -> Response:
        hosted = market.files.get(request.path_params["fid"])
        if hosted is None:
            return Response(status_code=404)
        hosted.data = await request.body()
        return Response(status_code=200)

    async def uploaded(request: Request) -> Response:
        hosted = market.files.get(request.path_params["fid"])
        return Response(hosted.data, media_type=hosted.content_type) if hosted else Response(status_code=404)

    async def jwks(request: Request) -> Response:
        return JSONResponse(jwks_of(market.signing_key))

    return Starlette(routes=[
        Route("/.well-known/jwks.json", jwks),
        Route("/storage/upload/initiate", initiate, methods=["POST"]),
        Route("/storage/uploads/{fid}", put_upload, methods=["PUT"]),
        Route("/files/uploaded/{fid}/{name}", uploaded),
        Route("/files/{rid}/pytorch_lora_weights.safetensors", weights),
        Route("/pictures/{jid}/{n:int}.jpg", lambda request: _picture(market, request)),
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


def replicate_fault(status: int) -> Response:
    """A poll Replicate refuses: 429 with the wait in its body, or a 5xx (fixtures/replicate/)."""
    if status == 429:
        return JSONResponse(fixture("replicate/error_429.json"), status_code=429)
    return JSONResponse(fixture("replicate/error_500.json") | {"status": status}, status_code=status)


def training_logs(steps: int) -> str:
    """What ostris/flux-dev-lora-trainer logs: its progress bar at every step (values ours)."""
    return "".join(f"flux_train_replicate: {100 * n // steps:3d}%| | {n}/{steps} [00:{n % 60:02d}<12:00,  1.39it/s,"
                   f" lr: 4.0e-04 loss: 3.{n % 997:03d}e-01]\n" for n in range(1, steps + 1))


def replicate_identity_app(market: IdentityMarket) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {SECRET}"

    def own_file(request: Request) -> Any:
        def resolve(url: str) -> bytes | None:
            match = re.match(rf"^{re.escape(_base(request))}/v1/files/([0-9a-f]+)$", url)
            hosted = market.files.get(match[1]) if match else None
            return hosted.data if hosted is not None else None
        return resolve

    async def create_training(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
        body = await _json_body(market, request)
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
        learn(market, training, body["input"]["input_images"], body["input"].get("trigger_word", "TOK"),
              resolve=own_file(request))
        if body.get("webhook") and market.script.latency_s > 0:
            asyncio.get_running_loop().create_task(_call_back(request, training, body["webhook"]))
        created = fixture("identity/replicate_training_created.json")
        # As the recorded answer: a new training's urls are under /v1/predictions/.
        base = f"{_base(request)}/v1/predictions/{training.id}"
        return JSONResponse(created | {"id": training.id, "model": f"{p['owner']}/{p['name']}",
                                       "version": p["version"], "input": body["input"],
                                       "urls": {"get": base, "cancel": f"{base}/cancel"}}, status_code=201)

    def training_json(request: Request, training: Training) -> dict[str, Any]:
        """The training as Replicate answers it: its input echoed, its logs so far, its output."""
        base = f"{_base(request)}/v1/trainings/{training.id}"
        steps = market.script.log_lines or int(training.body["input"].get("steps", 1000))
        shown = {"id": training.id, "urls": {"get": base, "cancel": f"{base}/cancel"},
                 "input": training.body["input"]}
        if training.canceled:
            return fixture("identity/replicate_training_canceled.json") | shown
        if not training.ended(market.script):
            return fixture("identity/replicate_training_processing.json") | shown | {"logs": training_logs(steps // 2)}
        answer = fixture("identity/replicate_training_succeeded.json") | shown | {"logs": training_logs(steps)}
        failed = training.failed(market.script)
        if failed:
            return answer | {"status": "failed", "output": None, "error": failed}
        version = hashlib.sha256(training.id.encode()).hexdigest()
        with market.lock:  # the training pushed a version of its destination
            market.versions.setdefault(training.body["destination"], {})[version] = replicate_tar(training.lora or b"")
        answer["output"] = {"version": f"{training.body['destination']}:{version}",
                            "weights": f"{_base(request)}/files/{training.id}/trained_model.tar"}
        return answer

    async def get_training(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
        training = market.trainings.get(request.path_params["tid"])
        if training is None:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        if market.script.poll_faults:
            return replicate_fault(market.script.poll_faults.pop(0))
        training.polls += 1
        if training.still_learning(market.script):
            return JSONResponse(fixture("identity/replicate_training_processing.json") | {
                "id": training.id, "input": training.body["input"]})
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
        await training.finished()
        body = json.dumps(training_json(request, training)).encode()
        async with httpx.AsyncClient() as client:
            for _ in range(market.script.webhooks):
                answer = await client.post(url, content=body, headers=signed(body), timeout=5)
                market.callbacks.append(answer.status_code)

    async def delete_version(request: Request) -> Response:
        p = request.path_params
        market.deleted_versions.append(f"{p['owner']}/{p['name']}:{p['vid']}")
        return Response(status_code=204)

    async def create_file(request: Request) -> Response:
        """Replicate's files API (replicate/replicate-python@0110c2c `tests/test_file.py`)."""
        if not authorized(request):
            return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
        content = _form_file(request.headers.get("content-type", ""), await request.body(), "content")
        if content is None:
            return JSONResponse({"title": "Invalid request", "detail": "content is required", "status": 422}, 422)
        name, content_type, data = content
        file_id = market.host(data, name=name, content_type=content_type, request=request)
        created = time.time()
        return JSONResponse(fixture("identity/replicate_file_created.json") | {
            "id": file_id, "name": name, "size": len(data), "content_type": content_type,
            "checksums": {"sha256": hashlib.sha256(data).hexdigest()}, "metadata": {},
            "urls": {"get": f"{_base(request)}/v1/files/{file_id}"},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created + 3600))}, status_code=201)

    async def delete_file(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
        file_id = request.path_params["fid"]
        with market.lock:
            gone = market.files.pop(file_id, None)
        market.deleted_files.append(file_id)
        return Response(status_code=204 if gone else 404)

    async def predict(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Unauthenticated"}, status_code=401)
        body = await _json_body(market, request)
        given = body.get("input", {})
        if errors := _invalid("identity/replicate_flux_dev_lora_inputs.schema.json", given):
            return JSONResponse({"title": "Input validation failed", "detail": "; ".join(errors), "status": 422},
                                status_code=422)
        pid, faces = uuid.uuid4().hex[:26], None
        try:
            faces = await _lora_faces(given["lora_weights"]) if given.get("lora_weights") else None
            error = None
        except ValueError as refused:
            error = str(refused)
        size, count = _replicate_size(given), given.get("num_outputs", 1)
        if error is None:
            await _paint(market, pid, faces=faces, body=given, size=size, count=count)
        market.images.append({"id": pid, "model": request.path_params.get("name", body.get("version")), "body": given,
                              "error": error, "polls": 0, "urls": [_picture_url(request, pid, n) for n in range(count)]})
        return JSONResponse(prediction(request, market.images[-1]), status_code=201)

    async def _lora_faces(weights: str) -> LocalWeights | None:
        """The faces of the LoRA cog-flux's loader loads from `weights`; ValueError as the loader fails."""
        url = cog_flux_url(weights, market.script.cog_flux)
        if url.startswith("https://replicate.com/"):  # a Replicate model's or version's weights, from Replicate itself
            found = market.version_weights(url)
            market.fetched.append((weights, 200 if found is not None else 404))
            if found is None:
                raise ValueError("Failed to download tarball: pget exited with status 1 (404)")
            return faces_of_lora(lora_of_tar(found))
        status, data = await _fetch(market, url)
        if status != 200:
            raise ValueError("Weights not found at the supplied URL. Please check the URL.")
        return faces_of_lora(lora_of_tar(data) if url.endswith(".tar") else data)

    def prediction(request: Request, made: dict[str, Any]) -> dict[str, Any]:
        """starting when created, processing at the first poll, then its end."""
        base = f"{_base(request)}/v1/predictions/{made['id']}"
        failed, status = made["error"] is not None, "starting" if made["polls"] == 0 else "processing"
        if made["polls"] > 1:
            status = "failed" if failed else "succeeded"
        return fixture("replicate/prediction_succeeded.json") | {
            "id": made["id"], "status": status, "error": made["error"] if status == "failed" else None,
            "output": made["urls"] if status == "succeeded" else None, "urls": {"get": base, "cancel": f"{base}/cancel"},
            "metrics": {"predict_time": 1.5}}

    async def get_prediction(request: Request) -> Response:
        made = next((m for m in market.images if m["id"] == request.path_params["pid"]), None)
        if made is None:
            return JSONResponse({"detail": "Not found."}, 404)
        if market.script.model_poll_faults:
            return replicate_fault(market.script.model_poll_faults.pop(0))
        made["polls"] += 1
        return JSONResponse(prediction(request, made))

    async def weights(request: Request) -> Response:
        training = market.trainings[request.path_params["tid"]]
        return _weights_file(market, training.id, replicate_tar(training.lora or b""))

    return Starlette(routes=[
        Route("/v1/files", create_file, methods=["POST"]),
        Route("/v1/files/{fid}", delete_file, methods=["DELETE"]),
        Route("/v1/models/{owner}/{name}/versions/{version}/trainings", create_training, methods=["POST"]),
        Route("/v1/trainings/{tid}", get_training),
        Route("/v1/trainings/{tid}/cancel", cancel_training, methods=["POST"]),
        Route("/v1/models/{owner}/{name}/versions/{vid}", delete_version, methods=["DELETE"]),
        Route("/v1/models/{owner}/{name}/predictions", predict, methods=["POST"]),
        Route("/v1/predictions", predict, methods=["POST"]),
        Route("/v1/predictions/{pid}", get_prediction),
        Route("/files/{tid}/trained_model.tar", weights),
        Route("/pictures/{jid}/{n:int}.jpg", lambda request: _picture(market, request)),
    ])


def _form_file(content_type: str, body: bytes, field_name: str) -> tuple[str, str, bytes] | None:
    """A multipart/form-data body's file field: its file name, type and bytes."""
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == field_name and part.get_filename():
            return part.get_filename(), part.get_content_type(), part.get_payload(decode=True)
    return None


def signed(body: bytes) -> dict[str, str]:
    """Standard Webhooks headers for `body`, as Replicate signs its callbacks."""
    return replicate_signed(body, WEBHOOK_SECRET)


# ---- Together -----------------------------------------------------------------------------


def together_identity_app(market: IdentityMarket) -> Starlette:
    async def generate(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return JSONResponse({"error": {"message": "Invalid API key provided", "type": "invalid_request_error"}},
                                status_code=401)
        body = await _json_body(market, request)
        if errors := _invalid("identity/together_flux_lora_request.schema.json", body):
            return JSONResponse({"error": {"message": "; ".join(errors), "type": "invalid_request_error"}},
                                status_code=400)
        for lora in body.get("image_loras", []):
            if (await _fetch(market, lora["path"]))[0] != 200:
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
