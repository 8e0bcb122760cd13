"""AWS Signature Version 4 for S3 requests and presigned links, path-style.

The standard algorithm (AWS "Signature Version 4 signing process"), without boto3: a
presigned link costs a few HMACs instead of a botocore request pipeline (about 0.3 ms of
blocking CPU each), and a request is an ordinary HTTP call. The signing key is derived
once a day.
"""

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def uri_path(bucket: str, key: str = "") -> str:
    """`/bucket/key`, each character of the key outside A-Z a-z 0-9 - _ . ~ / percent-encoded."""
    return quote(f"/{bucket}/{key}" if key else f"/{bucket}", safe="/-_.~")


def canonical_query(params: dict[str, str]) -> str:
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


@dataclass(frozen=True, kw_only=True)
class Request:
    """An HTTP request to sign: `headers` as the caller sends them, `payload_sha256` its body's."""

    method: str
    host: str
    path: str
    headers: dict[str, str]
    payload_sha256: str
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Link:
    """A link to sign: an object's `path` at `endpoint`, whose host is `host`."""

    endpoint: str
    host: str
    path: str
    method: str = "GET"


@dataclass(frozen=True, kw_only=True)
class _Canonical:
    """What a signature covers; `headers` lower-case names with trimmed values."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    payload_sha256: str


class SigV4Signer:
    service = "s3"

    def __init__(self, access_key_id: str, secret_access_key: str, *, region: str) -> None:
        self.access_key_id, self.region = access_key_id, region
        self._secret = secret_access_key
        self._keys: dict[str, bytes] = {}

    def _scope(self, day: str) -> str:
        return f"{day}/{self.region}/{self.service}/aws4_request"

    def _signing_key(self, day: str) -> bytes:
        if day not in self._keys:
            key = _hmac(f"AWS4{self._secret}".encode(), day)
            for part in (self.region, self.service, "aws4_request"):
                key = _hmac(key, part)
            self._keys = {day: key}  # one day at a time
        return self._keys[day]

    def _signature(self, request: _Canonical, stamp: str) -> tuple[str, str]:
        """(signed header names, signature)."""
        headers, names = request.headers, sorted(request.headers)
        canonical = "\n".join([request.method, request.path, request.query, *(f"{n}:{headers[n]}" for n in names), "",
                               ";".join(names), request.payload_sha256])
        to_sign = "\n".join([ALGORITHM, stamp, self._scope(stamp[:8]), hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(self._signing_key(stamp[:8]), to_sign.encode(), hashlib.sha256).hexdigest()
        return ";".join(names), signature

    def authorize(self, request: Request, now: datetime | None = None) -> dict[str, str]:
        """The request's headers plus x-amz-date, x-amz-content-sha256 and Authorization (with
        its `query` as its query string); every header given is signed."""
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        signed = {k.lower(): v.strip() for k, v in request.headers.items()} | {
            "host": request.host, "x-amz-date": stamp, "x-amz-content-sha256": request.payload_sha256}
        names, signature = self._signature(_Canonical(method=request.method, path=request.path, query=canonical_query(request.query),
                                                      headers=signed, payload_sha256=request.payload_sha256), stamp)
        credential = f"{self.access_key_id}/{self._scope(stamp[:8])}"
        authorization = f"{ALGORITHM} Credential={credential}, SignedHeaders={names}, Signature={signature}"
        return signed | {"authorization": authorization}

    def presign(self, link: Link, expires_s: int, *, now: datetime | None = None) -> str:
        """The link, signed: anyone may use it for `expires_s` seconds (the query-string form of SigV4)."""
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        params = {"X-Amz-Algorithm": ALGORITHM, "X-Amz-Credential": f"{self.access_key_id}/{self._scope(stamp[:8])}",
                  "X-Amz-Date": stamp, "X-Amz-Expires": str(expires_s), "X-Amz-SignedHeaders": "host"}
        query = canonical_query(params)
        _, signature = self._signature(_Canonical(method=link.method, path=link.path, query=query, headers={"host": link.host}, payload_sha256=UNSIGNED_PAYLOAD),
                                       stamp)
        return f"{link.endpoint}{link.path}?{query}&X-Amz-Signature={signature}"
