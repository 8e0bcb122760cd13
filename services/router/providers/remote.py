"""What the HTTP adapters share: one submit → wait → fetch flow, and the error mapping.

Each hosted provider queues work: we submit, poll until it is done, then download the
images. `RemoteProvider.generate` runs that flow under the request's deadline; when the
deadline passes (or the caller gives up) it cancels the remote request, so nobody pays
for work we will not use. HTTP answers map to `ProviderError` kinds: 429 → rate_limited
(with Retry-After), 5xx → server_error, 401/403 → unavailable (our credentials are wrong
for every request, so the breaker should take the provider out), other 4xx →
bad_request, client timeouts → timeout, connection failures → unavailable.

A stage other than generate runs when the provider's configuration has a `stages` entry
for it: each candidate's image goes to the stage's model as a data: URI, one request per
candidate, and what comes back must be an image Pillow opens (the scorer and delivery read
nothing else), or the call fails and the engine falls back.
"""

import asyncio
import base64
import io
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any

import httpx
from PIL import Image

from services.common.http_headers import retry_after_s
from services.router.clock import Clock, LoopClock
from services.router.providers.base import GeneratedImage, GenerationRequest, ProviderError
from services.router.providers.registry import HostedStage, ModelPin, ProviderConfig


@dataclass(frozen=True, slots=True)
class RemoteOutput:
    """What a finished remote request produced: where its images are, and compute time."""

    image_urls: tuple[str, ...]
    compute_s: float | None = None


class RemoteProvider(ABC):
    """A queued HTTP provider; subclasses say how to submit, poll, cancel and find images."""

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient, secret: str | None = None,
                 clock: Clock | None = None) -> None:
        self.name = config.name
        self.config = config
        self.client = client
        self.secret = secret
        self.clock = clock or LoopClock()

    async def generate(self, request: GenerationRequest) -> list[GeneratedImage]:
        if request.capability == "generate":
            pin = self._pin(request)
            return await self._run(request, pin, self._prompt_input(request, pin))
        stage = self.config.stages.get(request.capability)
        if stage is None:
            # A stage declared in capabilities with no `stages` entry: we would not know where
            # its image goes, so refuse rather than return a fresh painting as its output.
            raise ProviderError("bad_request", f"{self.name}: no stages.{request.capability} is configured for"
                                               f" the {self.config.adapter} adapter, so it cannot run"
                                               f" {request.capability}")
        # Image-to-image models take one image per call: one remote request per candidate.
        singles = [replace(request, start_index=index, count=1) for index in request.indices]
        try:
            async with asyncio.TaskGroup() as group:
                runs = [group.create_task(self._run(single, self.config.stage_model(stage),
                                                    stage_input(single, stage))) for single in singles]
        except ExceptionGroup as failed:
            raise _first_provider_error(failed) from None
        return [image for run in runs for image in run.result()]

    async def _run(self, request: GenerationRequest, pin: ModelPin, payload: dict[str, Any]) -> list[GeneratedImage]:
        """Submit `payload` to `pin`, wait for it under the deadline, and download its images."""
        started = self.clock.now()
        handle: Any = None
        try:
            async with asyncio.timeout(self._overall_s(request)):
                handle = await self._submit(request, pin, payload)
                output = await self._wait(handle)
                images = await asyncio.gather(*(self._download(url) for url in output.image_urls[: request.count]))
        except TimeoutError:
            await self._cancel_quietly(handle)
            raise ProviderError("timeout", f"{self.name} did not finish in {self._overall_s(request):.1f} s") from None
        except ProviderError as error:
            if error.kind == "timeout":
                await self._cancel_quietly(handle)
            raise
        except asyncio.CancelledError:
            await self._cancel_quietly(handle)
            raise
        if request.capability != "generate":
            images = [readable_image(self.name, data, media_type) for data, media_type in images]
        return self._generated(request, images, output, self.clock.now() - started)

    async def _wait(self, handle: Any) -> RemoteOutput:
        while True:
            output = await self._poll(handle)
            if output is not None:
                return output
            await self.clock.sleep(self.config.poll_interval_s)

    @abstractmethod
    def _prompt_input(self, request: GenerationRequest, pin: ModelPin) -> dict[str, Any]:
        """The model input that generates the request's candidates from its prompt."""

    @abstractmethod
    async def _submit(self, request: GenerationRequest, pin: ModelPin, payload: dict[str, Any]) -> Any:
        """Queue `payload` for the model; return what `_poll` and `_cancel` need to find it again."""

    @abstractmethod
    async def _poll(self, handle: Any) -> RemoteOutput | None:
        """The output once the work is done; None while it is still queued or running."""

    @abstractmethod
    async def _cancel(self, handle: Any) -> None:
        """Ask the provider to drop the work."""

    def _auth_headers(self) -> dict[str, str]:
        return {}

    async def _send(self, method: str, url: str, *, timeout_s: float | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**self._auth_headers(), **kwargs.pop("headers", {})}
        timeout = timeout_s if timeout_s is not None else self.config.timeouts.submit_s
        try:
            response = await self.client.request(method, url, headers=headers, timeout=timeout, **kwargs)
        except httpx.TimeoutException:
            raise ProviderError("timeout", f"{self.name}: {method} {url} timed out") from None
        except httpx.TransportError as error:
            raise ProviderError("unavailable", f"{self.name}: {method} {url}: {error!r}") from None
        raise_for_provider_status(self.name, response)
        return response

    async def _download(self, url: str) -> tuple[bytes, str]:
        if url.startswith("data:"):
            return decode_data_uri(url)
        response = await self._send("GET", url)
        return response.content, response.headers.get("content-type", "image/png").split(";")[0]

    async def _cancel_quietly(self, handle: Any) -> None:
        """Cancel remote work, even while our own task is being cancelled; never raise."""
        if handle is None:
            return
        try:
            await asyncio.shield(asyncio.wait_for(self._cancel(handle), self.config.timeouts.submit_s))
        except (ProviderError, TimeoutError, asyncio.CancelledError, httpx.HTTPError):
            pass

    def _pin(self, request: GenerationRequest) -> ModelPin:
        pin = self.config.model_for(request.model, request.model_version)
        if pin is None:
            raise ProviderError("bad_request", f"{self.name} has no model {request.model} {request.model_version}")
        return pin

    def _overall_s(self, request: GenerationRequest) -> float:
        return min(request.timeout_s, self.config.timeouts.overall_s)

    def _generated(self, request: GenerationRequest, images: list[tuple[bytes, str]], output: RemoteOutput,
                   latency_s: float) -> list[GeneratedImage]:
        compute_per_image = (output.compute_s if output.compute_s is not None else latency_s) / max(1, len(images))
        cost = self.config.price.price_micro_usd(request.width, request.height, compute_per_image)
        return [
            GeneratedImage(index=index, data=data, media_type=media_type, seed=request.seed_for(index),
                           cost_micro_usd=cost, latency_s=latency_s)
            for index, (data, media_type) in zip(request.indices, images)
        ]


def stage_input(request: GenerationRequest, stage: HostedStage) -> dict[str, Any]:
    """A stage model's input: the candidate's image as a data: URI, the prompt and parameters
    where the stage's configuration puts them."""
    image = request.input_for(request.start_index)
    if image is None:
        raise ProviderError("bad_request", f"candidate {request.start_index} has no image for {request.capability}")
    payload = {field: request.params[name] for name, field in stage.param_fields.items() if name in request.params}
    payload |= stage.params | {stage.image_field: data_uri(image)}
    if stage.prompt_field:
        payload[stage.prompt_field] = request.prompt
    return payload


def data_uri(image: bytes) -> str:
    try:
        media_type = Image.open(io.BytesIO(image)).get_format_mimetype() or "application/octet-stream"
    except (OSError, ValueError):
        raise ProviderError("bad_request", "the stage's input is not an image") from None
    return f"data:{media_type};base64,{base64.b64encode(image).decode('ascii')}"


def readable_image(provider: str, data: bytes, media_type: str) -> tuple[bytes, str]:
    """A stage's result, if it is an image Pillow opens (animated WebP and GIF included).

    The scorer and delivery read images only, so a video answer (an image-to-video model's
    `video/mp4`) fails the call: the engine then falls back to another provider of the stage.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            return data, image.get_format_mimetype() or media_type
    except (OSError, ValueError):
        raise ProviderError("server_error", f"{provider}: the stage's result is {media_type}, not an image"
                                            " the scorer and delivery can read") from None


def _first_provider_error(failed: ExceptionGroup) -> Exception:
    errors = [e for e in failed.exceptions if isinstance(e, ProviderError)]
    return errors[0] if errors else failed


def raise_for_provider_status(provider: str, response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = f"{provider}: HTTP {status} from {response.request.method} {response.request.url}: {response.text[:200]}"
    if status == 429:
        raise ProviderError("rate_limited", detail, retry_after_s(response))
    if status in (401, 403):
        raise ProviderError("unavailable", detail)
    if status == 408:
        raise ProviderError("timeout", detail)
    if status >= 500:
        raise ProviderError("server_error", detail, retry_after_s(response))
    raise ProviderError("bad_request", detail)


def decode_data_uri(uri: str) -> tuple[bytes, str]:
    header, _, payload = uri.partition(",")
    media_type = header.removeprefix("data:").split(";")[0] or "application/octet-stream"
    return base64.b64decode(payload), media_type


def json_body(response: httpx.Response, provider: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ProviderError("server_error", f"{provider}: answer is not JSON: {response.text[:200]}") from None
    if not isinstance(body, dict):
        raise ProviderError("server_error", f"{provider}: answer is not a JSON object")
    return body
