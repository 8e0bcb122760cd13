"""The admin APIs' guard: a bearer token from the service's settings (`admin_token`, from
GENLINE_ADMIN_TOKEN), on the service's `admin_port` only when it has one (its own socket,
which a NetworkPolicy can close to everyone else). Without a token the admin API is off."""

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common.problems import Problem

# The scheme the OpenAPI documents name; the token itself is checked below.
admin_token = HTTPBearer(scheme_name="adminToken", auto_error=False,
                         description="`Authorization: Bearer <GENLINE_ADMIN_TOKEN>`")


def require_admin(request: Request,
                  bearer: Annotated[HTTPAuthorizationCredentials | None, Security(admin_token)]) -> None:
    settings = request.app.state.settings
    if settings.admin_port and request.scope["server"][1] != settings.admin_port:
        raise Problem(404, "not-found", "no such resource on this port")
    if settings.admin_token is None:
        raise Problem(404, "admin-api-disabled", "the admin API is off: set GENLINE_ADMIN_TOKEN to enable it")
    given = bearer.credentials if bearer else ""
    if not hmac.compare_digest(given.encode(), settings.admin_token.get_secret_value().encode()):
        raise Problem(401, "invalid-admin-token", "send the admin token as 'Authorization: Bearer <token>'",
                      {"WWW-Authenticate": 'Bearer realm="genline-admin"'})


Admin = Annotated[None, Depends(require_admin)]
