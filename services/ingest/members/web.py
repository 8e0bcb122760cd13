"""What the sign-in routes share: the deployment's own base URL (for links and the provider's
redirect URI), the throttle on requests made without a key, and a sign-in as a request makes it."""

from typing import Any

from fastapi import Request

from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.ingest.deps import client_address
from services.ingest.members import sessions
from services.ingest.plans import Plan, rate_decision
from services.ingest.store import callers

# Requests made without a key (a link asked for or followed, a sign-in begun) per address.
SIGN_IN_RATE = Plan(name="sign-in", requests_per_s=1.0, burst=20, concurrent_jobs=None, images_per_day=None,
                    priority=0)


def base_of(request: Request, public_url: str | None) -> str:
    return (public_url or str(request.base_url)).rstrip("/")


def redirect_uri(request: Request, public_url: str | None) -> str:
    return f"{base_of(request, public_url)}/v1/sso/callback"


async def throttle(request: Request, runtime: ServiceRuntime) -> None:
    """Count a request without a key against its address's sign-in rate (429 beyond it)."""
    plan = SIGN_IN_RATE
    async with runtime.pool.connection() as conn:
        ahead = await callers.take_anonymous_request(conn, f"sign-in:{client_address(request)}",
                                                     interval_s=plan.interval_s, tolerance_s=plan.tolerance_s)
    if ahead is None:
        decision = rate_decision(plan, False, ahead_s=plan.tolerance_s)
        raise Problem(status=429, slug="rate-limited", detail=f"too many sign-in requests; retry after {decision.retry_after_s} s",
                      headers=decision.headers(plan), extra={"retry_after": decision.retry_after_s})


def sign_in_of(request: Request, member: Any, *, method: str) -> sessions.SignIn:
    return sessions.SignIn(tenant_id=member["tenant_id"], member_id=member["id"], method=method,
                           origin=client_address(request), user_agent=request.headers.get("user-agent", ""),
                           email=member["email"])
