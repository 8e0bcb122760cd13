"""`/v1/sso`: the console's single sign-on through a tenant's own OpenID Connect provider.
Owners (`sso:manage`) set the provider (`PUT /v1/sso`: issuer, client, allowed domains, group
roles, just-in-time membership or invitation only). A sign-in begins at
`GET /v1/sso/{tenant}/start` (a fresh state, nonce and PKCE verifier, bound to the browser by a
cookie) and ends at `GET /v1/sso/callback`: the state is taken once, the code redeemed with the
verifier, the id_token checked (signature, issuer, audience, expiry, nonce) and never accepted
twice, the person found or made a member, a session opened, and the browser sent back to the
console. A failure goes back to the console's sign-in page, saying why."""

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from services.common import problems
from services.common.api import RequestModel, StorableText
from services.common.audit import Action, record_action
from services.common.problems import Problem
from services.ingest.deps import Runtime, Settings, SsoManager, client_address
from services.ingest.key_encryption import keyring_of
from services.ingest.members import oidc, sessions, sso, team
from services.ingest.members.links import LinkSigner
from services.ingest.members.store import sessions as store
from services.ingest.members.web import redirect_uri, sign_in_of, throttle
from services.ingest.members.wiring import IdentityProviders, Signer
from services.ingest.session_auth import digest

router = APIRouter(prefix="/v1", tags=["sign-in"])
TENANT = r"^[a-z0-9][a-z0-9_-]{0,62}$"
BROWSER_COOKIE = "__Host-genline-sso"  # binds a sign-in under way to the browser that began it
REDIRECTED: dict[int | str, dict[str, Any]] = {303: {
    "description": "to the identity provider, or back to the console", "headers": {"Location": {
        "description": "where the browser goes next", "schema": {"type": "string"},
        "example": "https://login.example.com/authorize?response_type=code&client_id=genline&code_challenge_method=S256"}}}}


class ProviderRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "issuer": "https://login.example.com", "client_id": "genline", "client_secret": "s3cr3t-from-the-provider",
        "allowed_domains": ["example.com"], "group_roles": {"eng": "developer", "finance": "billing"},
        "just_in_time": True, "default_role": "viewer"}]})

    issuer: str = Field(max_length=500, pattern=r"^https?://[^\s#?]+$",
                        description="the provider's issuer; its discovery document is read now")
    client_id: StorableText = Field(min_length=1, max_length=500)
    client_secret: StorableText = Field(min_length=1, max_length=2000, description="kept wrapped; never shown again")
    allowed_domains: list[Annotated[str, Field(max_length=253, pattern=r"^[a-z0-9.-]+$")]] = Field(
        [], max_length=50, description="only addresses at these domains sign in; any when empty")
    groups_claim: StorableText = Field("groups", max_length=100, description="the id_token claim listing groups")
    group_roles: dict[Annotated[str, Field(max_length=200)], Literal["admin", "developer", "billing", "viewer"]] = Field(
        {}, max_length=100, description="a group's role for members who join just in time (the strongest wins)")
    just_in_time: bool = Field(False, description="people the provider vouches for join on first sign-in; else"
                                                  " only invited people and existing members sign in")
    default_role: Literal["admin", "developer", "billing", "viewer"] | None = Field(
        None, description="the role of a just-in-time member none of whose groups has one; none: such people are"
                          " refused")


class ProviderOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "issuer": "https://login.example.com", "client_id": "genline", "allowed_domains": ["example.com"],
        "groups_claim": "groups", "group_roles": {"eng": "developer"}, "just_in_time": True, "default_role": "viewer",
        "redirect_uri": "https://genline.example.com/v1/sso/callback"}]})

    issuer: str
    client_id: str
    allowed_domains: list[str]
    groups_claim: str
    group_roles: dict[str, str]
    just_in_time: bool
    default_role: str | None
    redirect_uri: str = Field(description="register this at the provider as the client's redirect URI")




def provider_out(row: store.ProviderRow, request: Request, *, public_url: str | None) -> ProviderOut:
    return ProviderOut(issuer=row.issuer, client_id=row.client_id, allowed_domains=row.allowed_domains,
                       groups_claim=row.groups_claim, group_roles=row.group_roles, just_in_time=row.just_in_time,
                       default_role=row.default_role, redirect_uri=redirect_uri(request, public_url))


@router.get("/sso", response_model=ProviderOut, responses=problems.responses(404))
async def get_sso(caller: SsoManager, request: Request, runtime: Runtime, settings: Settings) -> ProviderOut:
    """The tenant's identity provider (never its client secret)."""
    async with runtime.pool.connection() as conn:
        row = await store.read_provider(conn, caller.tenant_id)
    if row is None:
        raise Problem(status=404, slug="sso-not-configured", detail="this tenant has no identity provider")
    return provider_out(row, request, public_url=settings.public_url)


@router.put("/sso", response_model=ProviderOut, responses=problems.responses(422))
async def set_sso(body: ProviderRequest, caller: SsoManager, request: Request, runtime: Runtime, settings: Settings,
                  providers: IdentityProviders) -> ProviderOut:
    """Sign the tenant's members in through this OpenID Connect provider (authorization code
    with PKCE). Its discovery document is read now (422 when it cannot be, or names another
    issuer). From then on members sign in there only, not by mailed links."""
    if body.issuer.startswith("http://") and settings.environment == "production":
        raise Problem(status=422, slug="insecure-issuer", detail="an identity provider must be reached over https")
    try:
        await providers.metadata(body.issuer)
    except oidc.OidcError as error:
        raise Problem(status=422, slug="sso-provider-unusable", detail=str(error)) from None
    kek, wrapped = await sso.wrap_secret(keyring_of(settings), caller.tenant_id, secret=body.client_secret)
    row = store.ProviderRow(tenant_id=caller.tenant_id, issuer=body.issuer, client_id=body.client_id, secret_kek=kek,
                            client_secret=wrapped, allowed_domains=body.allowed_domains,
                            groups_claim=body.groups_claim, group_roles=dict(body.group_roles),
                            just_in_time=body.just_in_time, default_role=body.default_role)
    async with runtime.pool.connection() as conn, conn.transaction():
        await store.write_provider(conn, row)
        await record_action(runtime, conn, action=Action(actor=caller.actor, name="sso.set", target=f"tenant:{caller.tenant_id}",
                                                  tenant_id=caller.tenant_id, details=body.model_dump(exclude={"client_secret"})))
    runtime.relay.notify()
    return provider_out(row, request, public_url=settings.public_url)


@router.delete("/sso", response_model=ProviderOut, responses=problems.responses(404))
async def delete_sso(caller: SsoManager, request: Request, runtime: Runtime, settings: Settings) -> ProviderOut:
    """Stop signing in through the provider: members sign in by mailed links again. The answer
    is the provider they signed in through."""
    async with runtime.pool.connection() as conn, conn.transaction():
        row = await store.read_provider(conn, caller.tenant_id)
        if row is None or not await store.delete_provider(conn, caller.tenant_id):
            raise Problem(status=404, slug="sso-not-configured", detail="this tenant has no identity provider")
        await record_action(runtime, conn, action=Action(actor=caller.actor, name="sso.delete", target=f"tenant:{caller.tenant_id}",
                                                  tenant_id=caller.tenant_id, details={"issuer": row.issuer}))
    runtime.relay.notify()
    return provider_out(row, request, public_url=settings.public_url)


def back_to_console(problem: Problem) -> RedirectResponse:
    """A sign-in that failed goes back to the console's sign-in page, which says why."""
    return RedirectResponse(f"/console/sign-in?error={quote(problem.slug)}&detail={quote(problem.detail[:300])}",
                            status_code=303)


@router.get("/sso/{tenant_id}/start", status_code=303, response_class=RedirectResponse,
            responses=problems.responses(404, 429) | REDIRECTED)
async def start_sso(tenant_id: Annotated[str, Path(pattern=TENANT, examples=["acme"])], request: Request, runtime: Runtime,
                    settings: Settings, providers: IdentityProviders, signer: Signer,
                    invitation: Annotated[str | None, Query(max_length=200)] = None,
                    return_to: Annotated[str, Query(max_length=300, pattern=r"^/console(/[^\s]*)?$")] = "/console/jobs",
                    ) -> RedirectResponse:
    """Begin signing in through the tenant's provider: the browser is sent there (303) with a
    fresh state, nonce and PKCE challenge, and comes back to `/v1/sso/callback`. An
    `invitation` is this tenant's own open invitation, or 404."""
    await throttle(request, runtime)
    async with runtime.pool.connection() as conn:
        if invitation is not None:
            await team.open_invitation(conn, signer, token=invitation, tenant_id=tenant_id)
        provider = await store.read_provider(conn, tenant_id)
    if provider is None:
        raise Problem(status=404, slug="sso-not-configured", detail=f"{tenant_id!r} has no identity provider")
    try:
        metadata = await providers.metadata(provider.issuer)
        client = await sso.client_of(keyring_of(settings), provider, redirect_uri=redirect_uri(request, settings.public_url))
    except oidc.OidcError as error:
        raise Problem(status=503, slug="sso-provider-unreachable", detail=str(error)) from None
    pkce, browser = oidc.Pkce(), oidc.Pkce().state
    async with runtime.pool.connection() as conn:
        await store.insert_attempt(conn, store.SignInAttempt(
            state=pkce.state, browser_hash=digest(browser), tenant_id=tenant_id, nonce=pkce.nonce,
            code_verifier=pkce.verifier, invitation=invitation, return_to=return_to), lifetime_s=settings.sso_attempt_ttl_s)
    answer = RedirectResponse(oidc.authorization_url(metadata, client, pkce=pkce), status_code=303)
    answer.set_cookie(BROWSER_COOKIE, browser, max_age=settings.sso_attempt_ttl_s, path="/", secure=True,
                      httponly=True, samesite="lax")
    return answer


@router.get("/sso/callback", status_code=303, response_class=RedirectResponse, responses=REDIRECTED)
async def finish_sso(request: Request, runtime: Runtime, settings: Settings, providers: IdentityProviders, signer: Signer,
                     state: Annotated[str, Query(max_length=200)] = "",
                     code: Annotated[str, Query(max_length=2000)] = "",
                     error: Annotated[str | None, Query(max_length=200)] = None) -> RedirectResponse:
    """Where the provider sends the browser back: the sign-in is checked and, when it holds, a
    session opens (its cookies set) and the browser goes on to the console page it came from;
    otherwise to the sign-in page with the reason (303 either way)."""
    try:
        return await signed_in(request, (runtime, settings, providers, signer), answer=(state, code, error))
    except Problem as refused:
        return back_to_console(refused)


async def signed_in(request: Request, served: tuple[Any, Any, oidc.OidcClient, LinkSigner],
                    *, answer: tuple[str, str, str | None]) -> RedirectResponse:
    runtime, settings, providers, signer = served
    state, code, error = answer
    async with runtime.pool.connection() as conn:
        attempt = await store.take_attempt(conn, state) if state else None
    if attempt is None or attempt.browser_hash != digest(request.cookies.get(BROWSER_COOKIE, "")):
        raise Problem(status=400, slug="sso-state-refused", detail="this sign-in was not begun in this browser, was already used, or"
                      " took too long: sign in again")
    if error is not None or not code:
        raise Problem(status=403, slug="sso-refused-by-provider", detail=f"the identity provider refused the sign-in ({error})")
    async with runtime.pool.connection() as conn:
        provider = await store.read_provider(conn, attempt.tenant_id)
    if provider is None:
        raise Problem(status=403, slug="sso-not-configured", detail="the tenant no longer signs in through an identity provider")
    try:
        metadata = await providers.metadata(provider.issuer)
        client = await sso.client_of(keyring_of(settings), provider, redirect_uri=redirect_uri(request, settings.public_url))
        id_token = await providers.redeem(oidc.CodeRedemption(metadata=metadata, client=client, code=code,
                                                              verifier=attempt.code_verifier))
        claims = await providers.verified_claims(metadata, id_token, expected=oidc.Expected(provider.issuer, provider.client_id,
                                                                                    attempt.nonce))
    except oidc.OidcError as refused:
        raise Problem(status=403, slug="sso-token-refused", detail=str(refused)) from None
    arrival = sso.Arrival(provider=provider, claimed=sso.TokenClaims.of(claims, provider.groups_claim),
                          origin=client_address(request), invitation=attempt.invitation)
    async with runtime.pool.connection() as conn, conn.transaction():
        if not await store.first_use_of_token(conn, hashlib.sha256(id_token.encode()).hexdigest(),
                                              expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC)):
            raise Problem(status=403, slug="sso-token-replayed", detail="this id_token was already used to sign in")
        member = await sso.member_for(runtime, conn, arrival=arrival, signer=signer)
        opened = await sessions.open_for(runtime, conn, sign_in=sign_in_of(request, member, method="sso"), settings=settings)
    runtime.relay.notify()
    answer_ = RedirectResponse(attempt.return_to, status_code=303)
    sessions.set_cookies(answer_, opened)
    answer_.delete_cookie(BROWSER_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return answer_
