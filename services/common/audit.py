"""Recording an action in the audit trail: an AuditRecorded event added to the acting
service's outbox in the same transaction as the change, so there is no change without its
record and no record without its change."""

from collections.abc import Mapping
from contextvars import ContextVar
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


def member_actor(member_id: str) -> str:
    return f"member:{member_id}"


@dataclass(frozen=True)
class Acting:
    """Whom a request acts for, as its service authenticated it: the actor the trail names
    (`member:<id>`, or `key:<id>` for a key no member owns), where the request came from, and
    what else says who it was (the member's email, the key they used)."""

    actor: str
    origin: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


# Set by a service's authentication for the request being answered; what a route records in
# that request is then on that caller's name, from their address, whatever actor it passed.
ACTING: ContextVar[Acting | None] = ContextVar("genline_acting", default=None)


def who_acted(action: "Action") -> tuple[str, dict[str, Any]]:
    """The actor and details an action is recorded with: those of the authenticated caller of
    the request it was taken in, when there is one and the action is not an operator's or the
    system's own."""
    acting = ACTING.get()
    if acting is None or action.actor.startswith(("operator:", "system:")):
        return action.actor, dict(action.details)
    return acting.actor, {**action.details, **acting.details, "origin": acting.origin}  # acting's keys are actor_*


@dataclass(frozen=True, kw_only=True)
class Action:
    """What someone (`actor`) did (`name`, like `api_key.create`) to what (`target`), for
    which tenant, with what the trail should say besides (`details`)."""

    actor: str
    name: str
    target: str
    tenant_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


async def record_action(runtime: "ServiceRuntime", conn: psycopg.AsyncConnection[Any], *, action: Action) -> Envelope:
    """Add the action's event to `runtime`'s outbox inside the caller's transaction; the caller
    notifies the relay after commit."""
    actor, details = who_acted(action)
    event = AuditRecorded(service=runtime.service, actor=actor, action=action.name, target=action.target,
                          tenant_id=action.tenant_id, details=details, at=datetime.now(UTC))
    return await runtime.emit(conn, event)
