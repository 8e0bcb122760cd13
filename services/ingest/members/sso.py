"""Single sign-on through a tenant's own OpenID Connect provider: its configuration (the client
secret stored wrapped under the key-encryption key), and who a verified id_token is: a member
already linked to that identity, a member by that address (linked now), the invited person
when the sign-in follows an invitation, a new member just in time when the tenant allows it
(their role from their groups, else the default), or no one (403)."""

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.rows import DictRow

from services.common.audit import Action, record_action
from services.common.db import Conn
from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.ingest import roles
from services.ingest.key_encryption import Keyring
from services.ingest.members import oidc, team
from services.ingest.members.links import LinkSigner
from services.ingest.members.store import members as store
from services.ingest.members.store.sessions import ProviderRow


def secret_context(tenant_id: str) -> uuid.UUID:
    """What a tenant's client secret is wrapped for (it opens for this tenant only)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"genline:sso-client-secret:{tenant_id}")


async def wrap_secret(keyring: Keyring, tenant_id: str, *, secret: str) -> tuple[str | None, bytes]:
    return await asyncio.to_thread(keyring.wrap, secret.encode(), secret_context(tenant_id))


async def client_of(keyring: Keyring, provider: ProviderRow, *, redirect_uri: str) -> oidc.Client:
    secret = await asyncio.to_thread(keyring.unwrap, provider.secret_kek, provider.client_secret,
                                     job_id=secret_context(provider.tenant_id))
    return oidc.Client(issuer=provider.issuer, client_id=provider.client_id, client_secret=secret.decode(), redirect_uri=redirect_uri)


@dataclass(frozen=True, kw_only=True)
class TokenClaims:
    """What a verified id_token says about its person."""

    issuer: str
    subject: str
    email: str | None
    groups: tuple[str, ...]

    @classmethod
    def of(cls, claims: dict[str, Any], groups_claim: str) -> "TokenClaims":
        email = claims.get("email")
        if email is not None and claims.get("email_verified") is False:
            email = None  # an address the provider did not verify proves nothing
        groups = claims.get(groups_claim) or []
        return cls(issuer=str(claims["iss"]), subject=str(claims["sub"]),
                   email=str(email).lower() if isinstance(email, str) else None,
                   groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (str(groups),))


def role_from_groups(provider: ProviderRow, groups: tuple[str, ...]) -> str | None:
    """The strongest role the provider's group mapping gives these groups (never owner)."""
    role = roles.strongest(provider.group_roles[g] for g in groups if g in provider.group_roles)
    return None if role == "owner" else role


def refuse_domain(provider: ProviderRow, email: str | None) -> None:
    if email is None:
        raise Problem(status=403, slug="sso-no-email", detail="the identity provider did not give a verified email address")
    if provider.allowed_domains and email.rsplit("@", 1)[-1] not in provider.allowed_domains:
        raise Problem(status=403, slug="sso-domain-refused", detail=f"addresses at {email.rsplit('@', 1)[-1]!r} may not sign in to"
                      " this tenant")


@dataclass(frozen=True, kw_only=True)
class Arrival:
    """A verified sign-in through the tenant's provider: who, from where, with which invitation."""

    provider: ProviderRow
    claimed: TokenClaims
    origin: str | None
    invitation: str | None = None


async def member_for(runtime: ServiceRuntime, conn: Conn, *, arrival: Arrival, signer: LinkSigner) -> DictRow:
    """The member this sign-in is, made or linked as the tenant's settings say; 403 else. An
    invitation it follows must be this tenant's own (`signer` checks its link)."""
    provider, claimed = arrival.provider, arrival.claimed
    refuse_domain(provider, claimed.email)
    assert claimed.email is not None  # refused above
    if arrival.invitation is not None:
        return await team.accept(runtime, conn, token=arrival.invitation, signer=signer, identity=team.Identity(
            origin=arrival.origin, email=claimed.email, issuer=claimed.issuer, subject=claimed.subject,
            signed_in_at=provider.tenant_id))
    tenant_id = provider.tenant_id
    member = await store.member_by_identity(conn, tenant_id, issuer=claimed.issuer, subject=claimed.subject)
    if member is None:
        member = await store.member_by_email(conn, tenant_id, email=claimed.email)
        if member is not None and member["idp_subject"] is not None:
            raise Problem(status=403, slug="sso-identity-mismatch", detail="this address belongs to a member who signs in with another"
                          " identity at the provider")
        if member is not None:
            await store.link_identity(conn, member["id"], issuer=claimed.issuer, subject=claimed.subject)
    if member is None:
        member = await just_in_time(runtime, conn, arrival=arrival)
    return member


async def just_in_time(runtime: ServiceRuntime, conn: Conn, *, arrival: Arrival) -> DictRow:
    provider, claimed = arrival.provider, arrival.claimed
    role = role_from_groups(provider, claimed.groups) or provider.default_role
    if not provider.just_in_time or role is None:
        raise Problem(status=403, slug="sso-not-a-member", detail=f"{claimed.email} is not a member of this tenant; ask an admin for an"
                      " invitation")
    await store.lock_members(conn, provider.tenant_id)
    member = await store.insert_member(conn, store.NewMember(
        tenant_id=provider.tenant_id, role=role, email=claimed.email, issuer=claimed.issuer, subject=claimed.subject))
    await record_action(runtime, conn, action=Action(actor="system:sso", name="member.join", target=f"member:{member['id']}",
                                              tenant_id=provider.tenant_id, details={"email": claimed.email, "role": role,
                                                                   "groups": list(claimed.groups),
                                                                   "origin": arrival.origin}))
    return member
