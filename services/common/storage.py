"""Object storage (S3 or any S3-compatible objects) for candidates and delivered images.

Two buckets: internal (every candidate) and public (delivered images, reached through
presigned links that expire). Requests are plain async HTTP calls signed with SigV4
(path-style URLs), on the service's event loop: boto3 costs milliseconds of CPU per
request and a worker thread for each, which on a job's dozen requests was the largest
share of the platform's CPU. They are aiohttp's (its HTTP parser compiled): a PUT or a
GET of a 30 kB candidate took 0.83-0.94 ms of CPU through httpx, 0.34 through aiohttp,
and a job makes five.
"""

import asyncio
import hashlib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlsplit
from urllib.request import getproxies, proxy_bypass
from uuid import UUID
from xml.etree import ElementTree

import aiohttp
import httpx
import yarl
from opentelemetry.trace import SpanKind

from services.common import telemetry
from services.common.settings import ServiceSettings
from services.common.sigv4 import EMPTY_SHA256, Link, Request, SigV4Signer, canonical_query, uri_path
from services.common.tracing import tracer

MAX_LINK_TTL_S = 7 * 24 * 3600  # SigV4 presigned URLs cannot live longer


class StorageError(Exception):
    """The object store refused a request (status and its error body)."""

    def __init__(self, operation: str, status: int, *, body: bytes) -> None:
        super().__init__(f"S3 {operation} answered {status}: {body[:300].decode(errors='replace')}")
        self.status = status


@dataclass(frozen=True)
class ListedObject:
    key: str
    size_bytes: int
    last_modified: datetime


def candidate_prefix(tenant_id: str, job_id: UUID | str) -> str:
    """Where the router stores a job's candidates in the internal bucket (every attempt)."""
    return f"candidates/{tenant_id}/{job_id}/"


# Where the router copies a hosted provider's outputs of a job as soon as it fetched them (so
# that a resumed call takes the copy, not an expired URL): `provider-outputs/{job}/…` in the
# internal bucket. They are duplicates: erasure and retention remove them.
PROVIDER_COPIES = "provider-outputs"


def provider_copies_prefix(job_id: UUID | str | None = None) -> str:
    """The copies of one job's hosted outputs, or (None) of every job's."""
    return f"{PROVIDER_COPIES}/{job_id}/" if job_id is not None else f"{PROVIDER_COPIES}/"


def job_of_copy(key: str) -> UUID | None:
    """The job a copy's key names (`provider-outputs/{job}/…`), or None for another key."""
    parts = key.split("/")
    try:
        return UUID(parts[1]) if len(parts) > 2 and parts[0] == PROVIDER_COPIES else None
    except ValueError:
        return None


# File extensions of the media types Genline stores.
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "video/mp4": "mp4", "video/webm": "webm"}


# An attempt's candidates are one object, one after another: one request to store them and
# one to score them, where an object each cost a request each way per candidate.
ATTEMPT_SUFFIX = ".candidates"
ATTEMPT_MEDIA_TYPE = "application/octet-stream"


def attempt_key(tenant_id: str, job_id: UUID | str, *, attempt: int) -> str:
    """The object of an attempt's candidates; each candidate names its offset and size in it."""
    return f"{candidate_prefix(tenant_id, job_id)}{attempt}{ATTEMPT_SUFFIX}"


@dataclass(frozen=True)
class AttemptKeys:
    """The keys of one attempt's candidates in the internal bucket."""

    tenant_id: str
    job_id: UUID | str
    attempt: int

    def candidate(self, index: int, media_type: str = "image/png") -> str:
        """One candidate alone in its object (how candidates were stored before attempts' objects)."""
        return f"{candidate_prefix(self.tenant_id, self.job_id)}{self.attempt}/{index}.{EXTENSIONS.get(media_type, 'bin')}"

    def chunk(self, run: int, first_index: int) -> str:
        """The object of the candidates one call returned, stored as soon as it returned; `run` is
        the attempt's try, so a run taken over never rewrites what an earlier run announced."""
        return f"{candidate_prefix(self.tenant_id, self.job_id)}{self.attempt}-{run}-{first_index}{ATTEMPT_SUFFIX}"


def holds_candidates(key: str) -> bool:
    """Whether the object holds an attempt's candidates (rather than one candidate alone)."""
    return key.endswith(ATTEMPT_SUFFIX)


def candidate_part(data: bytes, offset: int | None, *, size_bytes: int) -> bytes:
    """A candidate's bytes in the object its `key` names: the whole object when `offset` is
    None, else `size_bytes` from `offset`; StorageError when the object is too short."""
    if offset is None:
        return data
    part = data[offset: offset + size_bytes]
    if len(part) != size_bytes:
        raise StorageError("GetObject", 416, body=f"{size_bytes} bytes at {offset} of an object of {len(data)}".encode())
    return part


class Content(Protocol):
    """Bytes to store and what they are (an image, a clip, an attempt's candidates)."""

    @property
    def data(self) -> bytes: ...

    @property
    def media_type(self) -> str: ...


@dataclass(frozen=True)
class Blob:
    """Content named where it is stored, when no object of the caller's carries it."""

    data: bytes
    media_type: str


class Part(Protocol):
    """Where a candidate's bytes lie: `size_bytes` from `offset` in the object `key` names
    (None: the whole object), as candidate references and scores say."""

    @property
    def key(self) -> str: ...

    @property
    def offset(self) -> int | None: ...

    @property
    def size_bytes(self) -> int: ...


@dataclass(frozen=True)
class Slice:
    """A part of an object named by hand."""

    key: str
    offset: int | None
    size_bytes: int


@dataclass(frozen=True, kw_only=True)
class S3Request:
    """One call of the S3 API: `operation` as AWS names it, for metrics and traces."""

    operation: str
    method: str
    bucket: str
    key: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # The body's SHA-256 when the caller has it already; hashed here otherwise.
    payload_sha256: str | None = None
    query: dict[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str
    media_type: str


def proxy_for(endpoint: str) -> str | None:
    """The proxy the environment names for the endpoint (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY,
    NO_PROXY), as httpx read them: read once, where aiohttp would read them (and ~/.netrc) in a
    thread on every request, a third of a request's CPU."""
    parts = urlsplit(endpoint)
    if parts.hostname is None or proxy_bypass(parts.hostname):
        return None
    proxies = getproxies()
    found: str | None = proxies.get(parts.scheme) or proxies.get("all")
    return found


# Each read and write of a request may wait this long (an object of any size is sent as long
# as it moves); a connection that could not be made, or was closed, is tried RETRIES times more.
REQUEST_TIMEOUT_S, RETRIES = 30.0, 2


@dataclass(frozen=True)
class Answer:
    """An S3 response: its status and its whole body."""

    status: int
    content: bytes


class ObjectStore:
    def __init__(self, settings: ServiceSettings) -> None:
        self.internal_bucket = settings.internal_bucket
        self.public_bucket = settings.public_bucket
        self.region = settings.s3_region
        self.endpoint = (settings.s3_endpoint_url or f"https://s3.{settings.s3_region}.amazonaws.com").rstrip("/")
        self.public_endpoint = (settings.s3_public_endpoint_url or self.endpoint).rstrip("/")
        self._host = httpx.URL(self.endpoint).netloc.decode()
        self._public_host = httpx.URL(self.public_endpoint).netloc.decode()
        self._proxy = proxy_for(self.endpoint)
        if settings.s3_access_key_id is None or settings.s3_secret_access_key is None:
            raise ValueError(f"the {settings.service_name} has no object-store key (GENLINE_S3_ACCESS_KEY_ID,"
                             " GENLINE_S3_SECRET_ACCESS_KEY)")
        self._signer = SigV4Signer(settings.s3_access_key_id, settings.s3_secret_access_key.get_secret_value(),
                              region=settings.s3_region)
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        for counter in (telemetry.STORED_BYTES, telemetry.STORED_OBJECTS):
            telemetry.preinitialise(counter, (self.internal_bucket,), (self.public_bucket,))

    async def _session(self) -> aiohttp.ClientSession:
        """This event loop's connection pool (a service has one loop; tests and commands run
        several, one after another or one inside another); the certificates httpx would trust
        (SSL_CERT_FILE, else certifi's)."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            await self._forget_gone_loops()
            verified: ssl.SSLContext | bool = httpx.create_ssl_context() if self.endpoint.startswith("https:") else True
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=verified), skip_auto_headers=("Content-Type",),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=REQUEST_TIMEOUT_S, sock_read=REQUEST_TIMEOUT_S))
        return session

    async def _forget_gone_loops(self) -> None:
        """The pools of loops that are closed, closed too: their connections went with their loop,
        so this only marks them closed (nothing then warns of them). A pool of another loop that
        still runs is that loop's to close."""
        for loop in [loop for loop in self._sessions if loop.is_closed()]:
            await self._sessions.pop(loop).close()

    async def aclose(self) -> None:
        """Closes this loop's connections (a service's shutdown)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()
        await self._forget_gone_loops()

    async def _request(self, call: S3Request) -> Answer:
        path = uri_path(call.bucket, call.key)
        url = self.endpoint + path + (f"?{canonical_query(call.query)}" if call.query else "")
        payload_sha256 = call.payload_sha256 or (hashlib.sha256(call.body).hexdigest() if call.body else EMPTY_SHA256)
        signed = self._signer.authorize(Request(method=call.method, host=self._host, path=path, headers=call.headers,
                                                payload_sha256=payload_sha256, query=call.query or {}))
        # Named and described as OpenTelemetry's botocore instrumentation does an S3 call.
        attributes = {"rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": call.operation,
                      "aws.s3.bucket": call.bucket}
        telemetry.S3_REQUESTS.labels(call.operation, telemetry.source()).inc()
        with tracer.start_as_current_span(f"S3.{call.operation}", kind=SpanKind.CLIENT, attributes=attributes):
            answer = await self._sent(call.method, yarl.URL(url, encoded=True), body=call.body, headers=signed)
        # A copy can fail after its 200 has been sent: the error is then in the body.
        if answer.status >= 300 or (call.operation == "CopyObject" and b"<Error>" in answer.content):
            raise StorageError(call.operation, answer.status, body=answer.content)
        return answer

    async def _sent(self, method: str, url: yarl.URL, *, body: bytes, headers: dict[str, str]) -> Answer:
        """The request sent, tried again on a new connection when none could be made or the one
        reused was closed before it answered (every S3 call here is idempotent), RETRIES times."""
        for attempt in range(RETRIES + 1):
            try:
                session = await self._session()
                async with session.request(method, url, data=body or None, headers=headers, proxy=self._proxy) as response:
                    return Answer(response.status, await response.read())
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError):
                if attempt == RETRIES:
                    raise
        raise AssertionError("unreachable")

    async def put(self, bucket: str, key: str, *, content: Content) -> StoredObject:
        data, media_type = content.data, content.media_type
        digest = hashlib.sha256(data).hexdigest()
        await self._request(S3Request(operation="PutObject", method="PUT", bucket=bucket, key=key, body=data, payload_sha256=digest,
                                      headers={"content-type": media_type, "x-amz-meta-sha256": digest}))
        self._count_stored(bucket, len(data))
        return StoredObject(key=key, size_bytes=len(data), sha256=digest, media_type=media_type)

    async def get(self, bucket: str, key: str) -> bytes:
        return (await self._request(S3Request(operation="GetObject", method="GET", bucket=bucket, key=key))).content

    async def get_part(self, bucket: str, part: Part) -> bytes:
        """The part's `size_bytes` of its object from its `offset` (a ranged GET); the whole
        object when `offset` is None. StorageError when the object does not hold that range."""
        offset, size_bytes = part.offset, part.size_bytes
        if offset is None:
            return await self.get(bucket, part.key)
        if size_bytes < 1:
            return b""
        response = await self._request(S3Request(operation="GetObject", method="GET", bucket=bucket, key=part.key,
                                                 headers={"range": f"bytes={offset}-{offset + size_bytes - 1}"}))
        if response.status == 206:
            return candidate_part(response.content, 0, size_bytes=size_bytes)
        return candidate_part(response.content, offset, size_bytes=size_bytes)  # a store that ignores ranges

    async def copy(self, stored: StoredObject, from_bucket: str, *, to_bucket: str) -> None:
        """The stored object, under its key, into another bucket; its size counted as stored there."""
        source = quote(f"/{from_bucket}/{stored.key}", safe="/-_.~")
        await self._request(S3Request(operation="CopyObject", method="PUT", bucket=to_bucket, key=stored.key, headers={"x-amz-copy-source": source}))
        self._count_stored(to_bucket, stored.size_bytes)

    async def delete(self, bucket: str, key: str) -> None:
        """Delete an object; one that is not there is no error (S3 answers 204 either way)."""
        await self._request(S3Request(operation="DeleteObject", method="DELETE", bucket=bucket, key=key))

    async def list_objects(self, bucket: str, prefix: str) -> list[ListedObject]:
        """Every object whose key starts with `prefix` (ListObjectsV2, page after page)."""
        found, token = [], None
        while True:
            query = {"list-type": "2", "prefix": prefix} | ({"continuation-token": token} if token else {})
            root = ElementTree.fromstring((await self._request(S3Request(operation="ListObjectsV2", method="GET", bucket=bucket, query=query))).content)
            ns = {"s3": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else {}
            tag = (lambda name: f"s3:{name}") if ns else (lambda name: name)
            for item in root.findall(tag("Contents"), ns):
                found.append(ListedObject(item.findtext(tag("Key"), "", ns), int(item.findtext(tag("Size"), "0", ns)),
                                          datetime.fromisoformat(item.findtext(tag("LastModified"), "", ns))))
            token = root.findtext(tag("NextContinuationToken"), None, ns)
            if root.findtext(tag("IsTruncated"), "false", ns) != "true" or not token:
                return found

    @staticmethod
    def _count_stored(bucket: str, size_bytes: int) -> None:
        telemetry.STORED_BYTES.labels(bucket).inc(size_bytes)
        telemetry.STORED_OBJECTS.labels(bucket).inc()

    def presign_get(self, bucket: str, key: str, *, ttl_s: int) -> str:
        ttl_s = max(1, min(ttl_s, MAX_LINK_TTL_S))
        return self._signer.presign(Link(endpoint=self.public_endpoint, host=self._public_host, path=uri_path(bucket, key)), ttl_s)

    async def ensure_buckets(self) -> None:
        for bucket in (self.internal_bucket, self.public_bucket):
            try:
                await self._request(S3Request(operation="HeadBucket", method="HEAD", bucket=bucket))
            except StorageError:
                await self._request(S3Request(operation="CreateBucket", method="PUT", bucket=bucket, body=self._location()))

    def _location(self) -> bytes:
        if self.region == "us-east-1":  # the default region takes no location
            return b""
        return (b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                b"<LocationConstraint>" + self.region.encode() + b"</LocationConstraint></CreateBucketConfiguration>")

    def signed_links(self, key: str, thumbnail_key: str | None, *, ttl_s: int) -> dict[str, Any]:
        """Fresh links to a delivered image and to its thumbnail (when it has one), and when they
        expire. Links are signed on every read, so nobody is handed one that has expired."""
        return {"url": self.presign_get(self.public_bucket, key, ttl_s=ttl_s),
                "thumbnail_url": self.presign_get(self.public_bucket, thumbnail_key, ttl_s=ttl_s) if thumbnail_key else None,
                "expires_at": datetime.now(UTC) + timedelta(seconds=max(1, min(ttl_s, MAX_LINK_TTL_S)))}

    async def ping(self) -> None:
        await self._request(S3Request(operation="HeadBucket", method="HEAD", bucket=self.internal_bucket))
