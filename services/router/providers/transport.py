"""HTTP for provider adapters: credentials only to the provider's own hosts, redirects
followed with a cap, downloads with a size cap, and every answer read against one table.

The table (`status_error`), an adapter refining it where its API says more in the body:

    401, 403                 credentials   (the key is wrong: breaker opens, operators alerted)
    402                      unavailable   (out of credit: breaker opens, operators alerted)
    408, client timeout      timeout
    429                      rate_limited  (with the wait the provider asks for: Retry-After,
                                            retry-after-ms, or "available in N seconds" in the body)
    5xx                      server_error  (with its Retry-After, if any)
    other 4xx                bad_request
    connection refused/lost  unavailable   (a download lost mid-way is tried again first)

An output's host is read apart: its 401, 403, 404 or 410 is an output that expired or was
deleted (Replicate deletes API outputs after an hour, OpenAI's image URLs last an hour,
fal's CDN keeps files for the time a request sets, BFL signs samples for ten minutes), so
`server_error` with `output_gone`: the provider's defect for its health, never its key's.

A request goes out with the adapter's auth headers only when `ProviderConfig.
may_receive_credentials` says its URL is the provider's: an output URL on a storage host,
or a redirect to one, gets no key. httpx follows no redirects here; this does, at most
`outputs.max_redirects` hops, deciding about the key again at each hop.

An output is fetched from the provider's own hosts (`ProviderConfig.own_host`), or from any
other host only through the provider hosts' guard (services.common.targets): at a public
address, or one `GENLINE_PROVIDER_ALLOWED_NETWORKS` opens, the connection pinned to it, each
redirect's target checked again. A provider that names an output elsewhere gets nothing
fetched: `bad_output`, its defect.
"""

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin

import httpx

from services.common import targets
from services.common.http_headers import retry_after_s
from services.router.providers.base import ProviderError
from services.router.providers.registry import ProviderConfig

REDIRECTS = frozenset({301, 302, 303, 307, 308})
# "Request was throttled. Expected available in 3 seconds." (Replicate, and Django REST
# framework APIs generally), or "try again in 20s" / "retry after 2.5 seconds".
_WAIT_IN_BODY = re.compile(r"(?:available|again|retry)\s+(?:in|after)\s+(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)",
                           re.IGNORECASE)
DOWNLOAD_TRIES = 3
# What a storage host answers for an output it no longer serves: a signature that expired
# (401, 403), an object deleted (404, 410).
OUTPUT_GONE = frozenset({401, 403, 404, 410})


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiRequest:
    """One request to a provider's API: a JSON body or a multipart form (fields without a file
    name, and files as (name, bytes, media type)), the adapter's own headers (its key is added
    where the key may go), and a timeout other than the submit timeout where the call needs one."""

    method: str
    url: str
    json: object = None
    files: Mapping[str, tuple[str | None, str] | tuple[str, bytes, str]] | None = None
    headers: Mapping[str, str] | None = None
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class Download:
    data: bytes
    media_type: str


class ProviderHttp:
    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient, *, auth_headers: dict[str, str],
                 outputs: targets.Guard | None = None) -> None:
        self.config = config
        self.client = client
        self.auth_headers = auth_headers
        self.outputs = outputs or targets.Guard(purpose=targets.Purpose.PROVIDER_HOSTS)

    @property
    def name(self) -> str:
        return self.config.name

    async def request(self, asked: ApiRequest) -> httpx.Response:
        """One request, redirects followed; any status comes back (see `status_error`)."""
        timeout = asked.timeout_s if asked.timeout_s is not None else self.config.timeouts.submit_s
        for _ in range(self.config.outputs.max_redirects + 1):
            headers = self._headers(asked.url, asked.headers)
            request = self.client.build_request(asked.method, asked.url, headers=headers, timeout=timeout,
                                                json=asked.json, files=asked.files)
            response = await self._send(request)
            if response.status_code not in REDIRECTS or "location" not in response.headers:
                return response
            asked = _redirected(asked, response)
        raise ProviderError(kind="server_error", message=f"{self.name}: more than {self.config.outputs.max_redirects} redirects"
                                            f" from {asked.method} {asked.url}")

    async def download(self, url: str) -> Download:
        """An output's bytes, within the size cap; a connection lost mid-way is tried again."""
        for attempt in range(1, DOWNLOAD_TRIES + 1):
            try:
                return await self._download_once(url)
            except (httpx.RemoteProtocolError, httpx.ReadError) as error:
                if attempt == DOWNLOAD_TRIES:
                    raise ProviderError(kind="server_error", message=f"{self.name}: the connection was lost downloading {url}"
                                                        f" ({DOWNLOAD_TRIES} tries): {error!r}") from None
                await asyncio.sleep(0.1 * attempt)
            except httpx.TimeoutException:
                raise ProviderError(kind="timeout", message=f"{self.name}: downloading {url} timed out") from None
        raise AssertionError("unreachable")

    async def _download_once(self, url: str) -> Download:
        timeout = httpx.Timeout(self.config.timeouts.submit_s)
        for _ in range(self.config.outputs.max_redirects + 1):
            target = await self._output_target(url)
            request = self.client.build_request("GET", target.url, headers=self._headers(url, None) | target.headers,
                                                timeout=timeout, extensions=target.extensions)
            response = await self._send(request, stream=True)
            try:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code >= 400:
                    await response.aread()
                    raise download_error(self.name, response)
                data = await self._capped_body(response, url)
                media_type = response.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
                return Download(data, media_type)
            finally:
                await response.aclose()
        raise ProviderError(kind="server_error", message=f"{self.name}: more than {self.config.outputs.max_redirects} redirects"
                                            f" downloading {url}")

    async def upload(self, url: str, *, data: bytes, media_type: str) -> httpx.Response:
        """Bytes PUT to the URL the provider named for them (its storage's signed upload URL),
        reached as an output is: its own hosts, or an address the provider hosts' guard allows."""
        target = await self._output_target(url)
        request = self.client.build_request("PUT", target.url, content=data, timeout=self.config.timeouts.overall_s,
                                            headers=self._headers(url, {"Content-Type": media_type}) | target.headers,
                                            extensions=target.extensions)
        return await self._send(request)

    async def _output_target(self, url: str) -> targets.PinnedRequest:
        """Where an output is fetched from: the provider's own hosts as the registry names them;
        any other host (a CDN, a bucket, a redirect's target) only at an address the provider
        hosts' guard allows, pinned to it. Else the provider's defect: it named that URL."""
        if self.config.own_host(url):
            return targets.PinnedRequest(url, {}, {})
        try:
            return await self.outputs.pinned(url)
        except targets.RefusedTarget as refused:
            raise ProviderError(kind="bad_output", message=f"{self.name}: an output at {url[:200]} is not fetched: {refused}",
                                terminal=True) from None

    async def _capped_body(self, response: httpx.Response, url: str) -> bytes:
        cap = self.config.outputs.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise ProviderError(kind="bad_output", message=f"{self.name}: {url} is {declared} bytes, over the {cap} allowed")
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise ProviderError(kind="bad_output", message=f"{self.name}: {url} is over the {cap} bytes allowed")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        where = f"{request.method} {request.url.copy_with(query=None)}"
        try:
            return await self.client.send(request, stream=stream)
        except httpx.TimeoutException:
            raise ProviderError(kind="timeout", message=f"{self.name}: {where} timed out", transient=True) from None
        except (httpx.RemoteProtocolError, httpx.ReadError):
            if stream:
                raise
            raise ProviderError(kind="unavailable", message=f"{self.name}: the connection was lost: {where}",
                                transient=True) from None
        except httpx.TransportError as error:
            raise ProviderError(kind="unavailable", message=f"{self.name}: {where}: {error!r}", transient=True) from None

    def _headers(self, url: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        own = self.auth_headers if self.config.may_receive_credentials(url) else {}
        return {**own, **(extra or {})}


def _redirected(asked: ApiRequest, response: httpx.Response) -> ApiRequest:
    """The request again at the redirect's target: as a GET without its body after a 303 (or a
    301 or 302 of a POST), as browsers do."""
    url = urljoin(str(response.request.url), response.headers["location"])
    if response.status_code == 303 or (response.status_code in (301, 302) and asked.method == "POST"):
        return replace(asked, method="GET", url=url, json=None, files=None)
    return replace(asked, url=url)


def status_error(provider: str, response: httpx.Response) -> ProviderError:
    """The table above, for an answer that is not a success."""
    status = response.status_code
    detail = f"{provider}: HTTP {status} from {response.request.method} {response.request.url}: {response.text[:300]}"
    if status in (401, 403):
        return ProviderError(kind="credentials", message=detail)
    if status == 402:
        return ProviderError(kind="unavailable", message=detail)
    if status == 408:
        return ProviderError(kind="timeout", message=detail)
    if status == 429:
        return ProviderError(kind="rate_limited", message=detail, retry_after_s=wait_hint_s(response))
    if status >= 500:
        return ProviderError(kind="server_error", message=detail, retry_after_s=wait_hint_s(response))
    return ProviderError(kind="bad_request", message=detail)


def download_error(provider: str, response: httpx.Response) -> ProviderError:
    """An output's host refusing it: gone (expired or deleted) for 401/403/404/410, else the table."""
    if response.status_code not in OUTPUT_GONE:
        return status_error(provider, response)
    return ProviderError(kind="server_error", message=f"{provider}: the output at {response.request.url.copy_with(query=None)}"
                                         f" expired or is gone (HTTP {response.status_code})", output_gone=True)


def wait_hint_s(response: httpx.Response) -> float | None:
    """How long the provider asks us to wait: its headers, else what its body says."""
    header = retry_after_s(response)
    if header is not None:
        return header
    milliseconds = response.headers.get("retry-after-ms", "")
    try:
        return max(0.0, float(milliseconds) / 1000) if milliseconds else _wait_in_body(response.text)
    except ValueError:
        return _wait_in_body(response.text)


def _wait_in_body(text: str) -> float | None:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("retry_after"), (int, float)):
        return max(0.0, float(body["retry_after"]))
    match = _WAIT_IN_BODY.search(text)
    return float(match[1]) if match else None


def json_body(response: httpx.Response, provider: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProviderError(kind="server_error", message=f"{provider}: answer is not JSON: {response.text[:200]}") from None


def json_object(response: httpx.Response, provider: str) -> dict[str, Any]:
    body = json_body(response, provider)
    if not isinstance(body, dict):
        raise ProviderError(kind="server_error", message=f"{provider}: answer is not a JSON object: {response.text[:200]}")
    return body


def object_at(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The JSON object under `key`; empty where the answer has none there."""
    value = body.get(key)
    return value if isinstance(value, dict) else {}
