"""Delivery rules, without I/O: where delivered images and their thumbnails live, what is
said of them, how long a failing copy is retried, which one outcome a job gets, and what a
webhook is: its id, body, signatures and retry schedule.

Delivery publishes exactly one outcome per job: JobDelivered, DeliveryFailed, or JobCanceled
when a cancel reached it before the images were published. What it published before a
cancel stays delivered (and is charged); a cancel that comes after changes nothing.
"""

import base64
import hashlib
import json
import random
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from standardwebhooks.webhooks import Webhook

from services.common.contracts import (
    FINAL_WEBHOOK_EVENTS,
    WEBHOOK_EVENTS,
    AccountAlerted,
    CandidatesScored,
    DeliveredImage,
    DeliveryFailed,
    JobCanceled,
    JobCancelRequested,
    SubjectChanged,
)
from services.common.storage import EXTENSIONS
from services.common.templates import Delivery
from services.delivery.postprocess import RenderedFiles

COPY_FAILED = "copy_failed"
UNPUBLISHABLE = "unpublishable_image"


def folder_of(key: str) -> str:
    """`{tenant}/{yyyy}/{mm}/{job}/` of a public key: where the job's images and thumbnails lie."""
    return key.rsplit("/", 1)[0] + "/"


def job_folder(tenant_id: str, when: datetime, *, job_id: UUID) -> str:
    """`{tenant}/{yyyy}/{mm}/{job}/`, where a job's images and thumbnails are published."""
    return f"{tenant_id}/{when:%Y}/{when:%m}/{job_id}/"


def public_key(folder: str, n: int, *, media_type: str) -> str:
    """`{folder}{n}.{ext}`, n counting from 1 in selection order."""
    return f"{folder}{n}.{EXTENSIONS.get(media_type, 'bin')}"


def thumbnail_key(key: str, media_type: str) -> str:
    """`…/{n}.thumb.{ext}`, beside the image (or clip) `…/{n}.{ext}` in the job's folder."""
    return f"{key.rsplit('.', 1)[0]}.thumb.{EXTENSIONS.get(media_type, 'bin')}"


@dataclass(frozen=True, kw_only=True)
class Published:
    """Where the `n`th image (or clip) of a job lies in the public bucket, its thumbnail beside
    it, and the signed links to both (`url`, `thumbnail_url`, `expires_at`)."""

    n: int
    key: str
    thumbnail_key: str
    links: dict[str, Any]


def as_asked(delivery: Delivery, event: CandidatesScored) -> Delivery:
    """The template's delivery, in the format the job asked its images in where it asked one
    (OpenAI's output_format): encoded so, its marks and Content Credentials as ever."""
    return delivery if event.output_format is None else delivery.model_copy(update={"format": event.output_format})


def delivered_image(published: Published, done: RenderedFiles, *, delivery: Delivery) -> DeliveredImage:
    """What JobDelivered says of one image or clip: the delivered bytes' hash, size and shape
    (a clip's length, rate and codec too)."""
    image, links = done.image, published.links
    return DeliveredImage(n=published.n, key=published.key, url=links["url"], expires_at=links["expires_at"],
                          sha256=hashlib.sha256(image.data).hexdigest(), size_bytes=len(image.data),
                          media_type=image.media_type, width=image.width, height=image.height, frames=image.frames,
                          duration_ms=image.duration_ms, fps=image.fps, codec=image.codec,
                          watermarked=delivery.watermark is not None, thumbnail_key=published.thumbnail_key,
                          thumbnail_url=links["thumbnail_url"], thumbnail_media_type=done.thumbnail.media_type,
                          manifest_label=done.manifest_label, watermark_id=done.watermark_id, claims=done.claims)


def copy_backoff_s(attempt: int, base_s: float, *, max_s: float) -> float:
    """Seconds to wait after failed copy `attempt` (1, 2, …) before the next one."""
    return min(max_s, base_s * 2.0 ** (attempt - 1))


def canceled(event: JobCancelRequested) -> JobCanceled:
    return JobCanceled(job_id=event.job_id, tenant_id=event.tenant_id, final_state=event.final_state,
                       reason=event.reason)


def unpublishable(event: CandidatesScored, error: Exception) -> DeliveryFailed:
    return DeliveryFailed(job_id=event.job_id, tenant_id=event.tenant_id, failure_code=UNPUBLISHABLE,
                          reason=f"a selected image could not be post-processed: {error}"[:1000])


def copy_failed(event: CandidatesScored, attempts: int, *, error: Exception) -> DeliveryFailed:
    return DeliveryFailed(job_id=event.job_id, tenant_id=event.tenant_id, failure_code=COPY_FAILED,
                          reason=f"publishing the images failed {attempts} times: {type(error).__name__}: {error}"[:1000])


# ---- webhooks ------------------------------------------------------------------------

RESPONSE_EXCERPT_CHARS = 500


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_event(final_state: str) -> str:
    return f"job.{final_state}"


def wanted(event_type: str, subscribed: list[str] | None) -> bool:
    """None subscribes to every final event type; `job.progress` is sent only where named."""
    if subscribed is None:
        return event_type in FINAL_WEBHOOK_EVENTS
    return event_type in WEBHOOK_EVENTS and event_type in subscribed


def webhook_id(job_id: UUID, event_type: str, *, target: str) -> str:
    """The `webhook-id` of one event to one target (an endpoint's id, or `job` for the job's own
    URL): the same for every retry and redelivery, so a receiver can deduplicate."""
    return "msg_" + uuid5(NAMESPACE_URL, f"genline:{job_id}:{event_type}:{target}").hex


def alert_webhook_id(alert_id: str, target: str) -> str:
    """The `webhook-id` of one alert to one endpoint: an alert is raised once per crossing, so
    its id names the crossing, and retries and redeliveries keep it."""
    return "msg_" + uuid5(NAMESPACE_URL, f"genline:alert:{alert_id}:{target}").hex


def alert_data(event: AccountAlerted) -> dict[str, Any]:
    """What an alert's webhook says: which crossing, when, and what was crossed."""
    return {"id": event.alert_id, "tenant_id": event.tenant_id, "raised_at": event.raised_at.isoformat(),
            **event.details}


def subject_webhook_id(event: SubjectChanged, target: str) -> str:
    """The `webhook-id` of one change of a subject to one endpoint: its `seq` names the change."""
    return "msg_" + uuid5(NAMESPACE_URL, f"genline:subject:{event.subject_id}:{event.seq}:{target}").hex


def subject_data(event: SubjectChanged) -> dict[str, Any]:
    """What a subject's webhook says: the subject as GET /v1/subjects/{id} shows it, without photos."""
    return {"id": str(event.subject_id), "tenant_id": event.tenant_id, "kind": event.kind, "state": event.state,
            "reason": event.reason, "changed_at": event.changed_at.isoformat()} | event.view


def webhook_body(event_type: str, at: datetime, *, view: dict[str, Any]) -> bytes:
    """The Standard Webhooks payload shape: type, timestamp, data (the job as the API shows it)."""
    return json.dumps({"type": event_type, "timestamp": at.isoformat(), "data": view},
                      separators=(",", ":")).encode()


@dataclass(frozen=True)
class WebhookPost:
    """One sending of a webhook message: its `webhook-id`, when it is sent, and its body; what
    its signatures cover."""

    webhook_id: str
    at: datetime
    body: bytes


def signature_header(signing_secrets: list[str], post: WebhookPost) -> str:
    """`webhook-signature`: one `v1,<base64>` per secret, space-separated (the receiver accepts
    any), so during a rotation's overlap both the old and the new secret verify."""
    return " ".join(Webhook(secret).sign(post.webhook_id, post.at, post.body.decode()) for secret in signing_secrets)


@dataclass(frozen=True)
class RetrySchedule:
    """How long a failing webhook waits before each next attempt: the delays in turn, each
    ±`jitter` of itself so that messages failing together spread out."""

    delays_s: list[float]
    jitter: float

    def delay_s(self, failures: int, rand: float | None = None) -> float | None:
        """Seconds until the next attempt after `failures` failed ones; None when the schedule is spent."""
        if failures > len(self.delays_s):
            return None
        rand = random.random() if rand is None else rand
        return self.delays_s[failures - 1] * (1 + self.jitter * (2 * rand - 1))


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """What one POST came to: the status and the start of the answer, or the error; how long it took."""

    status_code: int | None = None
    excerpt: str = ""
    error: str | None = None
    latency_ms: int = 0


def attempt_outcome(status_code: int | None) -> str:
    """`delivered` for a 2xx, `gone` for 410 (the endpoint is disabled), else `retry`. A 3xx
    is not followed: a redirect could lead to an address that was never checked."""
    if status_code is not None and 200 <= status_code < 300:
        return "delivered"
    return "gone" if status_code == 410 else "retry"
