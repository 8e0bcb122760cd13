"""Delivery rules, without I/O: where delivered images live."""

from datetime import datetime
from uuid import UUID

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def public_key(tenant_id: str, when: datetime, job_id: UUID, n: int, media_type: str) -> str:
    """`{tenant}/{yyyy}/{mm}/{job}/{n}.{ext}`, n counting from 1 in selection order."""
    return f"{tenant_id}/{when:%Y}/{when:%m}/{job_id}/{n}.{EXTENSIONS.get(media_type, 'bin')}"
