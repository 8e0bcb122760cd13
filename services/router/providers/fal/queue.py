"""fal's queue API (docs.fal.ai, "Queue"; the fal-ai/fal client `fal_client`).

    POST {endpoint}/{model_id}[?fal_webhook=url]  → {request_id, status_url, response_url, cancel_url}
    GET  {endpoint}/{app}/requests/{id}/status    → 202 {status: IN_QUEUE | IN_PROGRESS, …}, 200 {status: COMPLETED, …}
    GET  {endpoint}/{app}/requests/{id}           → the result: {images: [{url, width, height}], seed, timings}
    PUT  {endpoint}/{app}/requests/{id}/cancel    → 202 CANCELLATION_REQUESTED, 400 ALREADY_COMPLETED
    Authorization: Key <secret>;  X-Fal-Request-Timeout: <seconds>

`{app}` is the model id without its sub-path (`fal-ai/flux` for `fal-ai/flux/dev`;
`workflows/{owner}/{name}` and `comfy/{owner}/{name}` keep their namespace, as fal's
clients parse endpoint ids); the URLs the submit answer returns are used when they are
fal's own, as the client does.

`X-Fal-Request-Timeout` bounds only the wait until a runner starts the request (fal's
"common parameters": once a runner starts, inference runs as long as it needs); a request
not started by then ends in a 504 with `X-Fal-Request-Timeout-Type: user`, the request's
own timeout (`timeout`, final: fal's clients do not retry it). Once the request runs, only
the router's deadline ends the wait, and `PUT …/cancel` is a request the app may ignore:
a job given up on is canceled, written down as such, and its result never counted.

A finished request with an error says so in its status (`error`, `error_type`) or in the
status of its result; an answer carrying `x-fal-request-id` comes from fal's servers and
is final, one without (an ingress 502-504) is worth polling again, as `fal_client`
decides. A 403 about an exhausted balance (fal locks the account) is being out of credit,
not a wrong key. Images fal's safety checker flagged (`has_nsfw_concepts`) are dropped but
billed (fal bills every image it made): the others carry their cost, and a batch whose
every image was flagged is the request's refusal (`bad_request`) with its bill. The batch's
seed is in the result. Callbacks are signed with Ed25519 against fal's JWKS
(`options.jwks_url`).

A stage other than generate posts the model's input as configured, the candidate's image
as a data: URI in its top-level `image_field`. A subject's photos go to reference models and
trainers as files uploaded to fal's storage (`FalStorage`), kept there for
`options.upload_expiration_s` (a training's: its `timeout_s`).
"""

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ConfigDict, Field

from services.router.providers.adapters import AdapterTraits, adapter, adapter_options
from services.router.providers.base import ErrorKind, GeneratedImage, ProviderError
from services.router.providers.billing import BilledJob
from services.router.providers.hosted_files import SPARE_S, FileHost, HostedFile, Upload
from services.router.providers.inputs import CountInput, ModelInputs, SeedInput, SizeInput
from services.router.providers.remote import RemoteProvider
from services.router.providers.remote_calls import Fetched, OutputImage, RemoteCall, RemoteOutput
from services.router.providers.transport import ApiRequest, ProviderHttp, json_object, status_error
from services.router.providers.webhooks import callback_json, jwks_ed25519_keys, verify_fal_webhook

JWKS_TTL_S = 24 * 3600
# How long fal should keep what a request or an upload makes (its "media expiration" page).
LIFECYCLE = "X-Fal-Object-Lifecycle-Preference"
RUNNING = frozenset({"IN_QUEUE", "IN_PROGRESS"})
# A status poll is answered 202 while the request is queued or running and 200 once it is
# completed (fal-ai/fal@c6f0afa `projects/fal/tests/unit/cli/test_api.py`, `FakeQueue`);
# fal_client takes any 2xx (`_raise_for_status`). Trainers and models read them alike.
STATUS_OK = (200, 202)
# Endpoint ids whose first part is a namespace: `workflows/{owner}/{name}/…`.
APP_NAMESPACES = frozenset({"workflows", "comfy"})
# Set on fal's 504 when the request's own X-Fal-Request-Timeout passed before a runner started it.
TIMEOUT_TYPE = "x-fal-request-timeout-type"


class FalOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Where fal publishes the keys its callbacks are signed with.
    jwks_url: str = "https://rest.alpha.fal.ai/.well-known/jwks.json"
    # How long fal keeps a training's outputs once made (training.py): the router copies them at once.
    output_expiration_s: int = Field(24 * 3600, ge=60)
    # Where files are uploaded for fal's models to read (fal_client's REST_URL): a subject's photos.
    storage_url: str = "https://rest.alpha.fal.ai"
    # How long fal keeps a photo uploaded for reference generation (an order's calls use it
    # meanwhile, and upload it again as it nears its end).
    upload_expiration_s: int = Field(3600, ge=2 * SPARE_S)


@dataclass(eq=False)
class FalStorage:
    """fal's storage, as fal_client uploads a file there (fal-ai/fal@c6f0afa
    `projects/fal_client/src/fal_client/client.py` `_upload_via_storage`): `POST
    {storage_url}/storage/upload/initiate?storage_type=gcs` {file_name, content_type}, with the
    file's lifetime in `X-Fal-Object-Lifecycle-Preference`, answers {upload_url, file_url}; the
    bytes go by `PUT upload_url` (a signed URL: no key goes there). fal has no API that deletes
    a file: it expires."""

    http: ProviderHttp
    options: FalOptions

    async def upload(self, upload: Upload) -> HostedFile:
        keep_s = upload.keep_s or self.options.upload_expiration_s
        asked = ApiRequest(method="POST", url=f"{self.options.storage_url}/storage/upload/initiate?storage_type=gcs",
                           json={"file_name": upload.name, "content_type": upload.media_type},
                           headers={LIFECYCLE: json.dumps({"expiration_duration_seconds": keep_s})})
        response = await self.http.request(asked)
        if response.status_code not in (200, 201):
            raise queue_error(self.http.name, response)
        body = json_object(response, self.http.name)
        upload_url, file_url = body.get("upload_url"), body.get("file_url")
        if not (isinstance(upload_url, str) and isinstance(file_url, str)):
            raise ProviderError(kind="server_error", message=f"{self.http.name}: the storage's answer has no upload_url and file_url")
        put = await self.http.upload(upload_url, data=upload.data, media_type=upload.media_type)
        if put.status_code not in (200, 201, 204):
            raise status_error(self.http.name, put)
        return HostedFile(url=file_url, expires_at=time.time() + keep_s)

    async def delete(self, file_id: str) -> None:
        """Nothing to delete: fal deletes the file itself once its lifetime ends."""


@adapter("fal")
class FalProvider(RemoteProvider):
    traits = AdapterTraits(
        runs_stages=True, makes_clips=True, trains=True, hosts_files=True, default_endpoint="https://queue.fal.run",
        credential_hosts=("rest.alpha.fal.ai",), options=FalOptions, megapixels="whole",
        default_inputs=ModelInputs(size=SizeInput(style="image_size", field="image_size", multiple_of=8),
                                   count=CountInput(field="num_images", max=4), seed=SeedInput()),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options: FalOptions = adapter_options(self.config)
        self._jwks: tuple[float, list[bytes]] | None = None

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.secret}"} if self.secret else {}

    def _file_host(self) -> FileHost:
        return FalStorage(self.http, self.options)

    async def _submit(self, call: RemoteCall) -> dict[str, Any]:
        url = self.url(f"/{call.pin.remote}")
        if self.config.webhooks is not None:
            url += "?" + urlencode({"fal_webhook": f"{self.config.webhooks.url}/{self.name}"})
        # fal refuses a timeout of one second or less.
        timeout = max(2, self.provider_deadline_s(call))
        body = json_object(await self._send(ApiRequest(method="POST", url=url, json=call.payload,
                                                       headers={"X-Fal-Request-Timeout": str(timeout)})), self.name)
        request_id = body.get("request_id")
        if not request_id:
            raise ProviderError(kind="server_error", message=f"{self.name}: the submit answer has no request_id")
        base = self.url(f"/{app_id(call.pin.remote)}/requests/{request_id}")
        return {"id": request_id, "status": self._own(body.get("status_url"), f"{base}/status"),
                "response": self._own(body.get("response_url"), base),
                "cancel": self._own(body.get("cancel_url"), f"{base}/cancel")}

    async def _poll(self, handle: dict[str, Any]) -> RemoteOutput | None:
        status = json_object(await self._send(ApiRequest(method="GET", url=handle["status"]), ok=STATUS_OK), self.name)
        if not finished(status, provider=self.name, request_id=handle["id"]):
            return None
        response = await self.http.request(ApiRequest(method="GET", url=handle["response"]))
        if response.status_code != 200:
            raise result_error(self.name, response)
        return self._output(json_object(response, self.name))

    async def _cancel(self, handle: dict[str, Any]) -> None:
        await self._send(ApiRequest(method="PUT", url=handle["cancel"]), ok=(200, 202, 400))

    def _error(self, response: httpx.Response) -> ProviderError:
        return queue_error(self.name, response)

    def _own(self, url: object, built: str) -> str:
        return url if isinstance(url, str) and self.config.may_receive_credentials(url) else built

    def _output(self, result: dict[str, Any]) -> RemoteOutput:
        # Image-to-image models answer {image: {url}}, image-to-video ones {video: {url}}.
        single = result.get("image") or result.get("video")
        images = result.get("images") or ([single] if single else None)
        if not isinstance(images, list) or not all(isinstance(i, dict) and i.get("url") for i in images):
            raise ProviderError(kind="bad_output", message=f"{self.name}: the result has no image URLs", terminal=True)
        flagged = result.get("has_nsfw_concepts") or []
        kept = [image for n, image in enumerate(images) if not (n < len(flagged) and flagged[n] is True)]
        seed = result.get("seed") if isinstance(result.get("seed"), int) else None
        inference = (result.get("timings") or {}).get("inference")
        return RemoteOutput(images=tuple(OutputImage(url=image["url"], seed=seed) for image in kept),
                            compute_s=float(inference) if isinstance(inference, (int, float)) else None,
                            dropped=len(images) - len(kept))

    def _generated(self, call: RemoteCall, done: Fetched, *, latency_s: float) -> list[GeneratedImage]:
        output, _ = done
        if output.dropped and not output.images:
            raise ProviderError(kind="bad_request", message=f"{self.name}: the safety checker flagged every image", terminal=True,
                                billed_micro_usd=self._billed(BilledJob(call=call, output=output, count=output.dropped, latency_s=latency_s)))
        return super()._generated(call, done, latency_s=latency_s)

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> str:
        verify_fal_webhook(await self._public_keys(), headers, body=body)
        return str(callback_json(body).get("request_id", ""))

    async def _public_keys(self) -> list[bytes]:
        if self._jwks is None or time.monotonic() - self._jwks[0] > JWKS_TTL_S:
            document = json_object(await self._send(ApiRequest(method="GET", url=self.options.jwks_url)), self.name)
            self._jwks = (time.monotonic(), jwks_ed25519_keys(document))
        return self._jwks[1]


def finished(status: dict[str, Any], *, provider: str, request_id: str) -> bool:
    """Whether a request's status says it is completed; the error of one that completed failing
    (`error`, `error_type`: a timeout of the app's own is a timeout) or in a state fal does not name."""
    state = status.get("status")
    if state in RUNNING:
        return False
    if state != "COMPLETED":
        raise ProviderError(kind="server_error", message=f"{provider}: request {request_id} is {state!r}", terminal=True)
    if status.get("error"):
        error_type = status.get("error_type")
        kind: ErrorKind = "timeout" if "timeout" in str(error_type or "").lower() else "server_error"
        raise ProviderError(kind=kind, message=f"{provider}: request {request_id} failed ({error_type}): {status['error']}",
                            terminal=True)
    return True


def queue_error(provider: str, response: httpx.Response) -> ProviderError:
    """An answer of fal's queue that is not a success, read against the table (transport.py)
    with what fal's answers say beyond it."""
    error = status_error(provider, response)
    # fal locks an account whose balance is exhausted: a 403 that no key can cure.
    if response.status_code == 403 and "balance" in response.text.lower():
        return ProviderError(kind="unavailable", message=str(error))
    if response.status_code == 504 and response.headers.get(TIMEOUT_TYPE, "").lower() == "user":
        # Not started within X-Fal-Request-Timeout: the request's own deadline, not fal's failure.
        return ProviderError(kind="timeout", message=f"{provider}: no runner started the request before its"
                                        f" X-Fal-Request-Timeout: {error}", terminal=True)
    return error


def result_error(provider: str, response: httpx.Response) -> ProviderError:
    """A completed request's result that is not there: final when fal's own servers say so
    (`x-fal-request-id`, or anything but a 5xx or 429), worth asking again after an ingress error."""
    error = queue_error(provider, response)
    if "x-fal-request-id" in response.headers or error.kind not in ("server_error", "rate_limited"):
        error.terminal = True  # fal's own answer about the request: polling will not change it
    return error


def app_id(model_id: str) -> str:
    """`fal-ai/flux/dev` → `fal-ai/flux`, `workflows/me/pipe/x` → `workflows/me/pipe`: status and
    results live under the app, not the sub-path."""
    parts = model_id.split("/")
    return "/".join(parts[:3] if parts[0] in APP_NAMESPACES else parts[:2])
