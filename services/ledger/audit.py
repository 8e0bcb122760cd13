"""The audit trail the ledger keeps: every AuditRecorded event of every service, once (the
operators' view of it, `GET /admin/v1/audit`, is services.ledger.routes.audit)."""

from typing import Any

from psycopg.types.json import Jsonb

from services.common.bus import Envelope
from services.common.contracts import AuditRecorded
from services.common.db import Conn
from services.ledger.store import audit as trail


def row_of(envelope: Envelope) -> tuple[Any, ...]:
    event = envelope.event
    assert isinstance(event, AuditRecorded)  # the trail keeps audit records only
    return (envelope.id, event.at, event.service, event.actor, event.action, event.target, event.tenant_id,
            Jsonb(event.details))


async def keep(conn: Conn, envelopes: list[Envelope]) -> None:
    """Add these audit events to the trail; one seen before changes nothing."""
    if envelopes:
        await trail.keep_entries(conn, [row_of(e) for e in envelopes])
