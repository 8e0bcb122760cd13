"""What each API call sends and how its answer is read, shared by the sync and async
clients, which differ only in how they wait for I/O."""

import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from uuid import UUID

import httpx

from genline_client.errors import APIConnectionError, ConfigurationError, NotFound, WaitTimeout
from genline_client.models import Job, JobEvent, Preview, Progress, Video
from genline_client.retry import RetryPolicy
from genline_client.sse import ServerSentEvent

DEFAULT_API_URL = "http://127.0.0.1:8000"
USER_AGENT = "genline-client-python/0.1.0"
STREAM_MEDIA_TYPE = "text/event-stream"
STREAM_READ_TIMEOUT_S = 60.0  # the server sends a keep-alive comment every 15 s
LINK_MARGIN_S = 60  # links that expire sooner are signed again before a download


def resolve_config(api_key: str | None, base_url: str | None) -> tuple[str, str]:
    """The API's URL and key: the arguments, else GENLINE_API_URL and GENLINE_API_KEY."""
    api_key = api_key or os.environ.get("GENLINE_API_KEY")
    base_url = base_url or os.environ.get("GENLINE_API_URL") or DEFAULT_API_URL
    if not api_key:
        raise ConfigurationError("no API key: pass api_key=… or set GENLINE_API_KEY")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigurationError(f"the API URL must start with http:// or https://, not {base_url!r}")
    return base_url.rstrip("/"), api_key


@dataclass(frozen=True, kw_only=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


def job_id_of(job: Any) -> str:
    """A job id from an id (str or UUID) or from anything with an `id` (Job, SubmittedJob, JobSummary)."""
    if isinstance(job, str | UUID):
        return str(job)
    return str(job.id)


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def create_job(prompt: str, images: int, *, template: str | None, idempotency_key: str | None,
               options: dict[str, Any]) -> Call:
    # One key for every try of this submission: a retry after a lost answer finds the first job.
    key = idempotency_key or str(uuid.uuid4())
    body = without_none({"prompt": prompt, "images": images, "template": template} | options)
    if "subject" in body:  # a Subject, or its id
        body["subject"] = job_id_of(body["subject"])
    if "video" in body:
        body["video"] = video_request(body["video"])
    return Call(method="POST", path="/v1/jobs", json=body, headers={"Idempotency-Key": key})


def quote(template: str, images: int, *, options: dict[str, Any]) -> Call:
    body = without_none({"template": template, "images": images} | options)
    if "subject" in body:
        body["subject"] = job_id_of(body["subject"])
    if "video" in body:
        body["video"] = video_request(body["video"])
    return Call(method="POST", path="/v1/quotes", json=body)


def video_request(video: Video | dict[str, Any]) -> dict[str, Any]:
    """A job's `video` object as the API takes it, checked here first: a typo in a field is
    a ValueError before anything is sent, not a job that asks for the wrong clip."""
    return Video.model_validate(video).model_dump(mode="json", exclude_none=True)


# What an upload's bytes are, by their first bytes; the API screens them again by content.
IMAGE_SIGNATURES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))


def upload(content: bytes, media_type: str | None) -> Call:
    if media_type is None:
        riff_webp = content[:4] == b"RIFF" and content[8:12] == b"WEBP"
        media_type = "image/webp" if riff_webp else next(
            (kind for signature, kind in IMAGE_SIGNATURES if content.startswith(signature)), "application/octet-stream")
    return Call(method="POST", path="/v1/uploads", headers={"Content-Type": media_type}, content=content)


def list_jobs(limit: int | None, cursor: str | None, *, state: str | None, template: str | None,
              created_after, created_before) -> Call:
    params = without_none({"limit": limit, "cursor": cursor, "state": state, "template": template,
                           "created_after": _time(created_after), "created_before": _time(created_before)})
    return Call(method="GET", path="/v1/jobs", params=params)


def _time(value) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


def job_events(job: Any, after: int) -> Call:
    return Call(method="GET", path=f"/v1/jobs/{job_id_of(job)}/events", params={"after": after})


def job_stream(job: Any) -> str:
    return f"/v1/jobs/{job_id_of(job)}/stream"


TENANT_STREAM = "/v1/events/stream"


def preview_path(preview: Preview | str) -> str:
    """The path of a passing candidate's image: a progress entry's `Preview`, or its `url`."""
    url = preview.url if isinstance(preview, Preview) else preview
    if url.startswith(("http://", "https://")) or not url.startswith("/v1/"):
        raise ValueError(f"not a preview link of this API: {url!r}")
    return url


def job_receipt(job: Any) -> Call:
    return Call(method="GET", path=f"/v1/jobs/{job_id_of(job)}/receipt")


def receipt_page(after: int, limit: int) -> Call:
    return Call(method="GET", path="/v1/receipts", params={"after": after, "limit": limit})


def signing_keys() -> Call:
    return Call(method="GET", path="/.well-known/genline-keys.json")


def usage(days: int) -> Call:
    return Call(method="GET", path="/v1/usage", params={"days": days})


def usage_attribution(group_by: str, days: int) -> Call:
    return Call(method="GET", path="/v1/usage/attribution", params={"group_by": group_by, "days": days})


def api_keys() -> Call:
    return Call(method="GET", path="/v1/api-keys")


def set_key_caps(key_id: str, daily: int | None, *, monthly: int | None) -> Call:
    return Call(method="PUT", path=f"/v1/api-keys/{key_id}/caps", json={"daily_cap_credits": daily, "monthly_cap_credits": monthly})


def me() -> Call:
    return Call(method="GET", path="/v1/me")


def members() -> Call:
    return Call(method="GET", path="/v1/members")


def invite(email: str, role: str) -> Call:
    return Call(method="POST", path="/v1/invitations", json={"email": email, "role": role})


def invitations() -> Call:
    return Call(method="GET", path="/v1/invitations")


def revoke_invitation(invitation_id: str) -> Call:
    return Call(method="DELETE", path=f"/v1/invitations/{invitation_id}")


def set_member_role(member_id: str, role: str) -> Call:
    return Call(method="PUT", path=f"/v1/members/{member_id}/role", json={"role": role})


def remove_member(member_id: str, move_keys_to: str | None) -> Call:
    return Call(method="DELETE", path=f"/v1/members/{member_id}", params={"move_keys_to": move_keys_to} if move_keys_to else None)


def audit_log(filters: dict[str, Any]) -> Call:
    return Call(method="GET", path="/v1/audit", params={k: v for k, v in filters.items() if v is not None})


def alerts() -> Call:
    return Call(method="GET", path="/v1/account/alerts")


def set_alert_settings(balance_low_below: int | None, grant_expiring_days: int) -> Call:
    return Call(method="PUT", path="/v1/account/alerts/settings",
                json={"balance_low_below": balance_low_below, "grant_expiring_days": grant_expiring_days})


@dataclass(kw_only=True)
class StreamPosition:
    """Where a client is in an event stream, so that a dropped connection resumes after the
    last entry received (`Last-Event-ID`) rather than from the start."""

    path: str
    last_id: str | None
    deadline: float | None
    attempt: int = 0

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        headers = {"Accept": STREAM_MEDIA_TYPE}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        return http.build_request("GET", self.path, headers=headers, timeout=stream_timeout(http.timeout, self.deadline))

    def received(self, message: ServerSentEvent) -> JobEvent | None:
        if event := event_of(message):
            self.attempt, self.last_id = 0, message.id or str(event.seq)
        return event

    def delay_after(self, error: httpx.TransportError, retry: RetryPolicy) -> float:
        """How long to wait before reconnecting; raises when the deadline or the retries are spent."""
        if past(self.deadline):
            raise WaitTimeout(f"no end of {self.path} before the deadline") from error
        delay = retry.after_error(self.attempt)
        if delay is None:
            raise APIConnectionError(f"GET {self.path}: {error!r}") from error
        self.attempt += 1
        return delay


def event_of(message: ServerSentEvent) -> JobEvent | None:
    """A log entry from a server-sent event; None for anything else the stream carries."""
    try:
        entry = json.loads(message.data)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    if "seq" not in entry and message.id is not None and message.id.isdigit():
        entry["seq"] = int(message.id)
    entry.setdefault("type", message.event)
    return JobEvent.model_validate(entry) if "seq" in entry else None


@dataclass
class Listeners:
    """The callbacks of a `wait`: each log entry goes to `on_event` once, in `seq` order,
    whether it came over the stream or from polling the log, and each progress entry's
    `Progress` to `on_progress` too. `after` is the last entry handed on."""

    on_event: Callable[[JobEvent], Any] | None = None
    on_progress: Callable[[Progress], Any] | None = None
    after: int = 0

    @property
    def listening(self) -> bool:
        return self.on_event is not None or self.on_progress is not None

    def hand_on(self, event: JobEvent) -> list[Any]:
        """Call the callbacks with `event` unless it was handed on already; what they
        returned (the async client awaits what can be awaited)."""
        if event.seq <= self.after:
            return []
        self.after = event.seq
        results = []
        if self.on_event is not None:
            results.append(self.on_event(event))
        if self.on_progress is not None and (progress := event.progress) is not None:
            results.append(self.on_progress(progress))
        return results


def stream_timeout(timeout: httpx.Timeout, deadline: float | None) -> httpx.Timeout:
    """A read timeout longer than the server's keep-alive interval, cut short by the deadline."""
    read = STREAM_READ_TIMEOUT_S if deadline is None else max(0.1, min(STREAM_READ_TIMEOUT_S, deadline - time.monotonic()))
    return httpx.Timeout(timeout.connect, read=read, write=timeout.write, pool=timeout.pool)


def past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def deadline_in(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else time.monotonic() + timeout_s


def has_no_stream(error: NotFound) -> bool:
    """A 404 for the route itself (a platform without streams), not for the job."""
    return not error.type.endswith("job-not-found")


def links_expire_soon(job: Job) -> bool:
    soon = datetime.now(timezone.utc) + timedelta(seconds=LINK_MARGIN_S)
    return any(output.expires_at <= soon for output in job.outputs)


def resume_delay(error: httpx.TransportError, url: str, *, retry: RetryPolicy, stalled: int) -> float:
    """How long to wait before taking up a broken download again, after `stalled` tries in
    a row that received nothing; raises when the retries are spent. Only those count: a
    slow connection that keeps breaking still finishes, as long as each try gets further."""
    delay = retry.after_error(stalled)
    if delay is None:
        raise APIConnectionError(f"GET {url}: {error!r}") from error
    return delay


def without_authorization(request: httpx.Request) -> httpx.Request:
    # A signed link carries its own authorisation; a bearer token beside it is refused by S3.
    del request.headers["Authorization"]
    return request


def account() -> Call:
    return Call(method="GET", path="/v1/account")


def billing() -> Call:
    return Call(method="GET", path="/v1/billing")


def checkout(pack: str, save_card: bool, *, success_url: str | None, cancel_url: str | None) -> Call:
    return Call(method="POST", path="/v1/billing/checkout", json=without_none({
        "pack": pack, "save_card": save_card, "success_url": success_url, "cancel_url": cancel_url}))


def set_auto_topup(below: int, pack: str, *, max_per_month: int, enabled: bool) -> Call:
    return Call(method="PUT", path="/v1/billing/auto-topup", json={"below": below, "pack": pack, "max_per_month": max_per_month,
                                                       "enabled": enabled})


class ClientCalls(Protocol):
    """What a resource of the synchronous client (`client.batches`, `client.subjects`, ...)
    needs of it: the client is passed in, so a resource never imports the client back."""

    _http: httpx.Client

    def call(self, call: Call) -> Any: ...

    def _sleep(self, seconds: float) -> object: ...

    def _open(self, request: httpx.Request) -> AbstractContextManager[httpx.Response]: ...


class AsyncClientCalls(Protocol):
    """`ClientCalls`, for the resources of the asyncio client."""

    _http: httpx.AsyncClient

    def call(self, call: Call) -> Awaitable[Any]: ...

    def _sleep(self, seconds: float) -> Awaitable[object]: ...

    def _open(self, request: httpx.Request) -> AbstractAsyncContextManager[httpx.Response]: ...

