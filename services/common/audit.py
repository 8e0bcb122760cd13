"""Recording an action in the audit trail: an AuditRecorded event added to the acting
service's outbox in the same transaction as the change, so there is no change without its
record and no record without its change."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

from services.common.bus import Envelope
from services.common.contracts import AuditRecorded

if TYPE_CHECKING:  # the runtime imports this module's callers
    from services.common.runtime import ServiceRuntime


def operator_actor(name: str) -> str:
    return f"operator:{name}"


def key_actor(key_id: str) -> str:
    return f"key:{key_id}"


def system_actor(service: str) -> str:
    return f"system:{service}"


@dataclass(frozen=True)
class Action:
    """What someone (`actor`) did (`name`, like `api_key.create`) to what (`target`), for
    which tenant, with what the trail should say besides (`details`)."""

    actor: str
    name: str
    target: str
    tenant_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


async def record_action(runtime: "ServiceRuntime", conn: psycopg.AsyncConnection[Any], action: Action) -> Envelope:
    """Add the action's event to `runtime`'s outbox inside the caller's transaction; the caller
    notifies the relay after commit."""
    event = AuditRecorded(service=runtime.service, actor=action.actor, action=action.name, target=action.target,
                          tenant_id=action.tenant_id, details=dict(action.details), at=datetime.now(UTC))
    return await runtime.emit(conn, event)
