"""The admin APIs' guard: named operator tokens with scopes (GENLINE_ADMIN_TOKENS, and the
shared GENLINE_ADMIN_TOKEN as one operator with every scope), on the service's `admin_port`
only when it has one (its own socket, which a NetworkPolicy can close to everyone else).
Without a token the admin API is off.

A route names the scope it needs (`OperatorWith("credits:grant")`) and gets the operator,
whose name is the actor of the audit events it records."""

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common.problems import Problem
from services.common.settings import OPERATOR_SCOPES, AdminApiSettings, sha256_hex

# The scheme the OpenAPI documents name; the token itself is checked below.
admin_token = HTTPBearer(scheme_name="adminToken", auto_error=False,
                         description="`Authorization: Bearer <operator token>` (GENLINE_ADMIN_TOKENS)")
UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="genline-admin"'}


@dataclass(frozen=True)
class Operator:
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes


def operator_of(settings: AdminApiSettings, given: str) -> Operator | None:
    """The operator whose token this is. Every configured token is compared, in constant time
    on digests of equal length, so neither the answer's time nor its length tells how much
    of a token was right or which operator's it was."""
    digest, found = sha256_hex(given).encode(), None
    for name, token in settings.operators().items():
        if hmac.compare_digest(digest, token.digest().encode()) and found is None:
            found = Operator(name, token.scopes)
    return found


def _guard(scope: str) -> Callable[..., Awaitable[Operator]]:
    assert scope in OPERATOR_SCOPES, scope

    async def require_scope(request: Request,
                      bearer: Annotated[HTTPAuthorizationCredentials | None, Security(admin_token)]) -> Operator:
        settings = request.app.state.settings
        if settings.admin_port and request.scope["server"][1] != settings.admin_port:
            raise Problem(status=404, slug="not-found", detail="no such resource on this port")
        if not settings.operators():
            raise Problem(status=404, slug="admin-api-disabled",
                          detail="the admin API is off: set GENLINE_ADMIN_TOKENS (or GENLINE_ADMIN_TOKEN) to enable it")
        operator = operator_of(settings, bearer.credentials if bearer else "")
        if operator is None:
            raise Problem(status=401, slug="invalid-admin-token", detail="send an operator token as 'Authorization: Bearer <token>'",
                          headers=UNAUTHORIZED)
        if not operator.allows(scope):
            raise Problem(status=403, slug="missing-scope", detail=f"operator {operator.name!r} lacks the scope {scope!r}",
                          extra={"scope": scope})
        return operator

    return require_scope


def OperatorWith(scope: str) -> Any:  # noqa: N802 - reads as a type in route signatures
    """The operator calling, who must hold `scope`; 404 off the admin port or with no
    tokens, 401 for an unknown token, 403 naming the missing scope."""
    return Annotated[Operator, Depends(_guard(scope))]
