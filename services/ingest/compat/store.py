"""The job an Idempotency-Key is bound to, for a caller whose call timed out before it was
answered (the OpenAI-compatible API's APITimeoutError): the key it sent names its job."""

from datetime import datetime
from uuid import UUID

from services.common.db import Conn


async def job_of_key(conn: Conn, tenant_id: str, *, key: str, ttl_s: int) -> tuple[UUID, datetime] | None:
    """The job and the binding's expiry, while the binding lives."""
    row = await (await conn.execute(
        "SELECT job_id, created_at + make_interval(secs => %s) AS expires_at FROM idempotency_keys"
        " WHERE tenant_id = %s AND key = %s AND created_at > now() - make_interval(secs => %s)",
        [ttl_s, tenant_id, key, ttl_s])).fetchone()
    return (row["job_id"], row["expires_at"]) if row else None
