"""The uploads table: a tenant's screened photos, each under its own id."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from services.common.db import Conn
from services.ingest.inputs.screening import ScreenedImage


@dataclass(frozen=True)
class NewUpload:
    """A tenant's screened photo as it is stored: under its own id, in the tenant's uploads."""

    id: UUID
    tenant_id: str
    photo: ScreenedImage

    @property
    def key(self) -> str:
        return f"{self.tenant_id}/uploads/{self.id}.{self.photo.extension}"


async def insert_upload(conn: Conn, upload: NewUpload) -> dict[str, Any]:
    """Record an upload (its photo already stored under its key)."""
    photo = upload.photo
    row = await (await conn.execute(
        "INSERT INTO uploads (id, tenant_id, key, media_type, width, height, size_bytes, sha256)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
        [upload.id, upload.tenant_id, upload.key, photo.media_type, photo.width, photo.height, len(photo.data),
         photo.sha256],
    )).fetchone()
    assert row is not None  # RETURNING * of the row inserted
    return row


async def read_upload(conn: Conn, upload_id: UUID, *, tenant_id: str) -> dict[str, Any] | None:
    return await (await conn.execute(
        "SELECT * FROM uploads WHERE id = %s AND tenant_id = %s", [upload_id, tenant_id])).fetchone()
