"""What the HTTP adapters share: one submit → wait → fetch flow, and the error mapping.

Each hosted provider queues work: we submit, poll until it is done, then download the
images. `RemoteProvider.generate` runs that flow under the request's deadline; when the
deadline passes (or the caller gives up) it cancels the remote request, so nobody pays
for work we will not use. HTTP answers map to `ProviderError` kinds: 429 → rate_limited
(with Retry-After), 5xx → server_error, 401/403 → unavailable (our credentials are wrong
for every request, so the breaker should take the provider out), other 4xx →
bad_request, client timeouts → timeout, connection failures → unavailable.
"""

import asyncio
import base64
import email.utils
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import httpx

from services.router.clock import Clock, LoopClock
from services.router.providers.base import GeneratedImage, GenerationRequest, ProviderError
from services.router.providers.registry import ModelPin, ProviderConfig


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
        if request.capability != "generate":
            # A hosted provider may declare a stage in the registry, but these adapters send
            # prompts only: refuse rather than return a fresh painting as the stage's output.
            raise ProviderError("bad_request", f"{self.name}: the {self.config.adapter} adapter does not send input"
                                               f" images, so it cannot run {request.capability}")
        pin = self._pin(request)
        started = self.clock.now()
        handle: Any = None
        try:
            async with asyncio.timeout(self._overall_s(request)):
                handle = await self._submit(request, pin)
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
        return self._generated(request, images, output, self.clock.now() - started)

    async def _wait(self, handle: Any) -> RemoteOutput:
        while True:
            output = await self._poll(handle)
            if output is not None:
                return output
            await self.clock.sleep(self.config.poll_interval_s)

    @abstractmethod
    async def _submit(self, request: GenerationRequest, pin: ModelPin) -> Any:
        """Queue the work; return what `_poll` and `_cancel` need to find it again."""

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


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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
