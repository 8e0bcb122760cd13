"""Changes to a tenant's members, each in the caller's transaction with its audit record: a
role changed, a member or service account removed (their keys revoked unless moved, their
sessions ended), a service account added, an invitation made, revoked or accepted.

Two rules hold throughout. A caller gives or takes away only roles whose scopes are all their
own (services.ingest.roles.may_grant): an admin cannot make, demote or remove an owner.
And a tenant that has an owner keeps one: the last is neither demoted nor removed (409; the
database refuses it too, and every change runs with the tenant's row locked)."""

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg.rows import DictRow

from services.common.audit import Action, member_actor, record_action
from services.common.db import Conn
from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.ingest import roles
from services.ingest.members.links import BadLink, LinkSigner
from services.ingest.members.mail import Mail, Mailer, MailUnsent
from services.ingest.members.store import members as store
from services.ingest.members.store import sessions as session_store
from services.ingest.session_auth import digest


@dataclass(frozen=True)
class Changer:
    """Who changes the members: their tenant, what they may do, who they are in the trail."""

    tenant_id: str
    scopes: frozenset[str]
    actor: str


def refuse_beyond(changer: Changer, role: str, *, verb: str) -> None:
    if not roles.may_grant(changer.scopes, role):
        raise Problem(status=403, slug="role-beyond-yours", detail=f"you cannot {verb} the role {role!r}: it holds scopes you do not",
                      extra={"role": role})


async def member_to_change(conn: Conn, changer: Changer, *, member_id: UUID) -> DictRow:
    """The member, its tenant's members locked; 404 when the tenant has none by that id."""
    await store.lock_members(conn, changer.tenant_id)
    member = await store.read_member(conn, changer.tenant_id, member_id=member_id)
    if member is None:
        raise Problem(status=404, slug="member-not-found", detail=f"no member {member_id}")
    return member


async def refuse_last_owner(conn: Conn, member: DictRow, *, verb: str) -> None:
    if member["role"] == "owner" and await store.count_owners(conn, member["tenant_id"]) <= 1:
        raise Problem(status=409, slug="last-owner", detail=f"{member['email']} is the tenant's last owner and cannot be {verb};"
                      " make another member owner first")


@dataclass(frozen=True)
class Team:
    """A tenant's members as one caller changes them, each change recorded on `runtime`'s outbox
    in the caller's transaction."""

    runtime: ServiceRuntime
    changer: Changer

    async def record(self, conn: Conn, action: tuple[str, str, dict[str, Any]]) -> None:
        name, target, details = action
        await record_action(self.runtime, conn, action=Action(actor=self.changer.actor, name=name, target=target, tenant_id=self.changer.tenant_id,
                                                       details=details))

    async def change_role(self, conn: Conn, member_id: UUID, *, role: str) -> DictRow:
        """Give a member another role; their sessions end (they sign in again with the new one)."""
        changer = self.changer
        member = await member_to_change(conn, changer, member_id=member_id)
        refuse_beyond(changer, member["role"], verb="take away")
        refuse_beyond(changer, role, verb="give")
        if member["kind"] == "service" and role == "owner":
            raise Problem(status=422, slug="owner-is-a-person", detail="a service account cannot be an owner")
        if role != member["role"]:
            if role != "owner":
                await refuse_last_owner(conn, member, verb="demoted")
            await store.set_role(conn, member_id, role=role)
            ended = await session_store.end_sessions_of(conn, member_id, reason="role_changed")
            await self.record(conn, ("member.role_change", f"member:{member_id}", {
                "member_email": member["email"], "from": member["role"], "to": role, "sessions_ended": ended}))
        return await store.read_member(conn, changer.tenant_id, member_id=member_id) or member

    async def remove(self, conn: Conn, member_id: UUID, *, move_keys_to: UUID | None) -> None:
        """Remove a member or service account: its keys move to `move_keys_to` or are revoked,
        its sessions end, and it is marked removed."""
        changer = self.changer
        member = await member_to_change(conn, changer, member_id=member_id)
        refuse_beyond(changer, member["role"], verb="remove a member with")
        await refuse_last_owner(conn, member, verb="removed")
        moved = revoked = 0
        if move_keys_to is not None:
            heir = await store.read_member(conn, changer.tenant_id, member_id=move_keys_to)
            if heir is None or heir["id"] == member_id:
                raise Problem(status=422, slug="invalid-heir", detail=f"the keys cannot move to {move_keys_to}: not another member of"
                              " this tenant")
            moved = await store.move_keys(conn, member_id, to_member=move_keys_to)
        else:
            revoked = await store.revoke_keys_of(conn, member_id)
        ended = await session_store.end_sessions_of(conn, member_id, reason="member_removed")
        await store.mark_removed(conn, member_id)
        await self.record(conn, ("member.remove", f"member:{member_id}", {
            "member_email": member["email"], "name": member["name"], "role": member["role"], "keys_moved": moved,
            "keys_revoked": revoked, "moved_to": str(move_keys_to) if move_keys_to else None,
            "sessions_ended": ended}))

    async def add_service_account(self, conn: Conn, name: str, *, role: str) -> DictRow:
        refuse_beyond(self.changer, role, verb="give")
        if role == "owner":
            raise Problem(status=422, slug="owner-is-a-person", detail="a service account cannot be an owner")
        await store.lock_members(conn, self.changer.tenant_id)
        row = await store.insert_member(conn, store.NewMember(tenant_id=self.changer.tenant_id, role=role, name=name))
        await self.record(conn, ("service_account.create", f"member:{row['id']}", {"name": name, "role": role}))
        return row

    async def invite(self, conn: Conn, wanted: "Invite", *, signer: LinkSigner) -> tuple[DictRow, str]:
        """A new invitation and its link's token (to be mailed, never stored or shown)."""
        changer = self.changer
        refuse_beyond(changer, wanted.role, verb="give")
        email = wanted.email.strip().lower()
        if not await store.lock_members(conn, changer.tenant_id):
            raise Problem(status=404, slug="tenant-not-found", detail=f"no tenant {changer.tenant_id!r}")
        if await store.member_by_email(conn, changer.tenant_id, email=email) is not None:
            raise Problem(status=409, slug="already-a-member", detail=f"{email} is already a member of this tenant")
        expires = time.time() + wanted.ttl_s
        token = signer.sign("invitation", expires)
        row = await store.insert_invitation(conn, store.NewInvitation(
            id=uuid.uuid4(), tenant_id=changer.tenant_id, email=email, role=wanted.role, token_hash=digest(token),
            invited_by=changer.actor, expires_at=datetime.fromtimestamp(expires, UTC)))
        await self.record(conn, ("invitation.create", f"invitation:{row['id']}", {"email": email, "role": wanted.role}))
        return row, token

    async def revoke_invitation(self, conn: Conn, invitation_id: UUID) -> None:
        row = await store.revoke_invitation(conn, self.changer.tenant_id, invitation_id=invitation_id)
        if row is None:
            raise Problem(status=404, slug="invitation-not-found", detail=f"no open invitation {invitation_id}")
        await self.record(conn, ("invitation.revoke", f"invitation:{invitation_id}",
                                 {"email": row["email"], "role": row["role"]}))


@dataclass(frozen=True)
class Invite:
    email: str
    role: str
    ttl_s: int


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who follows an invitation's link, and from where: their provider's identity when they
    came through single sign-on (then their address must be the invited one, and the provider
    the invitation's own tenant's: `signed_in_at`)."""

    origin: str | None = None
    email: str | None = None
    issuer: str | None = None
    subject: str | None = None
    signed_in_at: str | None = None


def invitation_not_found(why: str = "was used, revoked or has expired") -> Problem:
    return Problem(status=404, slug="invitation-not-found", detail=f"this invitation {why}; ask for a new one")


async def open_invitation(conn: Conn, signer: LinkSigner, *, token: str, tenant_id: str | None = None,
                          lock: bool = False) -> DictRow:
    """The open invitation a link's token names: a token signed for invitations (a sign-in link
    is none), and, where the link is followed into a tenant (its sign-in), that tenant's own.
    404 otherwise, the same whichever check failed: a link says nothing of another tenant."""
    try:
        signer.check("invitation", token)
    except BadLink:
        raise invitation_not_found("link is not valid or has expired") from None
    invitation = await store.open_invitation(conn, digest(token), lock=lock)
    if invitation is None or (tenant_id is not None and invitation["tenant_id"] != tenant_id):
        raise invitation_not_found()
    return invitation


async def accept(runtime: ServiceRuntime, conn: Conn, *, token: str, identity: Identity, signer: LinkSigner) -> DictRow:
    """The member an invitation makes, in the role it names; the invitation used up. 404 for
    a link that is not (or no longer) an open invitation, or one of another tenant than the
    provider that signed the person in; 403 when a provider's address is not the invited one."""
    invitation = await open_invitation(conn, signer, token=token, tenant_id=identity.signed_in_at, lock=True)
    if identity.email is not None and identity.email.lower() != invitation["email"]:
        raise Problem(status=403, slug="invitation-for-another", detail=f"this invitation is for {invitation['email']}, and you signed in"
                      f" as {identity.email.lower()}")
    await store.lock_members(conn, invitation["tenant_id"])
    member = await store.member_by_email(conn, invitation["tenant_id"], email=invitation["email"])
    if member is None:
        member = await store.insert_member(conn, store.NewMember(
            tenant_id=invitation["tenant_id"], role=invitation["role"], email=invitation["email"],
            issuer=identity.issuer, subject=identity.subject))
    await store.mark_accepted(conn, invitation["id"], member_id=member["id"])
    details: dict[str, Any] = {"email": invitation["email"], "actor_email": invitation["email"],
                               "role": invitation["role"], "origin": identity.origin,
                               "invited_by": invitation["invited_by"]}
    await record_action(runtime, conn, action=Action(actor=member_actor(str(member["id"])), name="invitation.accept",
                                              target=f"invitation:{invitation['id']}", tenant_id=invitation["tenant_id"], details=details))
    return member


@dataclass(frozen=True)
class Outbound:
    """How an invitation leaves: signed by `signer`, mailed by `mailer`, its link under `base_url`."""

    signer: LinkSigner
    mailer: Mailer
    base_url: str


async def invite_by_mail(team: Team, wanted: Invite, *, outbound: Outbound) -> tuple[DictRow, str]:
    """Make the invitation (committed, with its audit record), then mail its link; the
    invitation as it then stands (mailed, or why not) and the link."""
    runtime = team.runtime
    async with runtime.pool.connection() as conn, conn.transaction():
        row, token = await team.invite(conn, wanted, signer=outbound.signer)
    runtime.relay.notify()
    link = f"{outbound.base_url}/console/invitation#{token}"
    tenant = team.changer.tenant_id
    text = (f"You are invited to join the Genline account {tenant!r} as {wanted.role}.\n\n"
            f"Accept the invitation: {link}\n\nThe link works once, until {row['expires_at']:%Y-%m-%d %H:%M} UTC.\n")
    try:
        await outbound.mailer.send(Mail(row["email"], f"Join {tenant} on Genline", text))
        error = None
    except MailUnsent as unsent:
        error = str(unsent)
    async with runtime.pool.connection() as conn:
        return await store.note_mailing(conn, row["id"], error=error) or row, link
