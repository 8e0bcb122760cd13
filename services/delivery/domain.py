"""Delivery rules, without I/O: where delivered images live, how long a failing copy is
retried, and which one outcome a job gets.

Delivery publishes exactly one outcome per job: JobDelivered, DeliveryFailed, or JobCanceled
when a cancel reached it before the images were published. What it published before a
cancel stays delivered (and is charged); a cancel that comes after changes nothing.
"""

from datetime import datetime
from uuid import UUID

from services.common.contracts import DeliveryFailed, JobCanceled, JobCancelRequested

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
COPY_FAILED = "copy_failed"


def public_key(tenant_id: str, when: datetime, job_id: UUID, n: int, media_type: str) -> str:
    """`{tenant}/{yyyy}/{mm}/{job}/{n}.{ext}`, n counting from 1 in selection order."""
    return f"{tenant_id}/{when:%Y}/{when:%m}/{job_id}/{n}.{EXTENSIONS.get(media_type, 'bin')}"


def copy_backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after failed copy `attempt` (1, 2, …) before the next one."""
    return min(max_s, base_s * 2 ** (attempt - 1))


def canceled(event: JobCancelRequested) -> JobCanceled:
    return JobCanceled(job_id=event.job_id, tenant_id=event.tenant_id, final_state=event.final_state,
                       reason=event.reason)


def copy_failed(job_id: UUID, tenant_id: str, attempts: int, error: Exception) -> DeliveryFailed:
    return DeliveryFailed(job_id=job_id, tenant_id=tenant_id, failure_code=COPY_FAILED,
                          reason=f"publishing the images failed {attempts} times: {type(error).__name__}: {error}"[:1000])
