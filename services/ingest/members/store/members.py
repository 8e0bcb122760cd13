"""The members' tables: members and service accounts, who owns which API key, invitations and
sign-in links. Every change to a tenant's members runs after `lock_members`, so two changes at
once are applied one after the other (the database also refuses a tenant left without an owner)."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg.rows import DictRow

from services.common.db import Conn

MEMBER_COLUMNS = "id, tenant_id, kind, email, name, role, idp_issuer, idp_subject, created_at, removed_at"
INVITATION_COLUMNS = ("id, tenant_id, email, role, invited_by, created_at, expires_at, accepted_at, accepted_by,"
                      " revoked_at, mailed_at, mail_error")
LIVE = "removed_at IS NULL"


@dataclass(frozen=True, kw_only=True)
class NewMember:
    """A member as it joins: a person (email, and an identity when one is known) or a
    service account (a name), with a role."""

    tenant_id: str
    role: str
    email: str | None = None
    name: str = ""
    issuer: str | None = None
    subject: str | None = None

    @property
    def kind(self) -> str:
        return "service" if self.email is None else "person"


async def lock_members(conn: Conn, tenant_id: str) -> bool:
    """Hold the tenant's row until the transaction ends; False when there is no such tenant."""
    row = await (await conn.execute("SELECT id FROM tenants WHERE id = %s FOR UPDATE", [tenant_id])).fetchone()
    return row is not None


async def insert_member(conn: Conn, member: NewMember) -> DictRow:
    row = await (await conn.execute(
        f"INSERT INTO members (tenant_id, kind, email, name, role, idp_issuer, idp_subject)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {MEMBER_COLUMNS}",
        [member.tenant_id, member.kind, member.email, member.name, member.role, member.issuer,
         member.subject])).fetchone()
    assert row is not None, "an INSERT ... RETURNING gives its row"
    return row


async def list_members(conn: Conn, tenant_id: str) -> list[DictRow]:
    """The tenant's members and service accounts, oldest first, with how many live keys each owns."""
    return await (await conn.execute(
        f"SELECT {', '.join('m.' + c.strip() for c in MEMBER_COLUMNS.split(','))},"
        " (SELECT count(*) FROM api_keys k WHERE k.owner_id = m.id AND k.revoked_at IS NULL"
        "  AND (k.expires_at IS NULL OR k.expires_at > now())) AS keys"
        f" FROM members m WHERE m.tenant_id = %s AND m.{LIVE} ORDER BY m.created_at, m.id", [tenant_id])).fetchall()


async def read_member(conn: Conn, tenant_id: str, *, member_id: UUID) -> DictRow | None:
    return await (await conn.execute(f"SELECT {MEMBER_COLUMNS} FROM members WHERE id = %s AND tenant_id = %s"
                                     f" AND {LIVE}", [member_id, tenant_id])).fetchone()


async def member_by_email(conn: Conn, tenant_id: str, *, email: str) -> DictRow | None:
    return await (await conn.execute(f"SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = %s AND email = %s"
                                     f" AND {LIVE}", [tenant_id, email])).fetchone()


async def member_by_identity(conn: Conn, tenant_id: str, *, issuer: str, subject: str) -> DictRow | None:
    return await (await conn.execute(
        f"SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = %s AND idp_issuer = %s AND idp_subject = %s"
        f" AND {LIVE}", [tenant_id, issuer, subject])).fetchone()


async def link_identity(conn: Conn, member_id: UUID, *, issuer: str, subject: str) -> None:
    await conn.execute("UPDATE members SET idp_issuer = %s, idp_subject = %s WHERE id = %s",
                       [issuer, subject, member_id])


async def set_role(conn: Conn, member_id: UUID, *, role: str) -> None:
    await conn.execute("UPDATE members SET role = %s WHERE id = %s", [role, member_id])


async def mark_removed(conn: Conn, member_id: UUID) -> None:
    await conn.execute("UPDATE members SET removed_at = now() WHERE id = %s", [member_id])


async def count_owners(conn: Conn, tenant_id: str) -> int:
    row = await (await conn.execute(f"SELECT count(*) AS n FROM members WHERE tenant_id = %s AND role = 'owner'"
                                    f" AND {LIVE}", [tenant_id])).fetchone()
    assert row is not None, "an aggregate gives one row"
    return int(row["n"])


# ---- keys and their owners ---------------------------------------------------------------


async def key_owner(conn: Conn, tenant_id: str, *, key_id: UUID) -> tuple[bool, UUID | None]:
    """Whether the tenant has a live key by that id, and who owns it (None: the tenant)."""
    row = await (await conn.execute(
        "SELECT owner_id FROM api_keys WHERE id = %s AND tenant_id = %s AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())", [key_id, tenant_id])).fetchone()
    return (row is not None, row["owner_id"] if row else None)


async def set_key_owner(conn: Conn, key_id: UUID, *, owner_id: UUID | None) -> None:
    await conn.execute("UPDATE api_keys SET owner_id = %s WHERE id = %s", [owner_id, key_id])


async def move_keys(conn: Conn, from_member: UUID, *, to_member: UUID) -> int:
    cur = await conn.execute("UPDATE api_keys SET owner_id = %s WHERE owner_id = %s AND revoked_at IS NULL",
                             [to_member, from_member])
    return cur.rowcount


async def revoke_keys_of(conn: Conn, member_id: UUID) -> int:
    cur = await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE owner_id = %s AND revoked_at IS NULL"
                             " AND (expires_at IS NULL OR expires_at > now())", [member_id])
    return cur.rowcount


# ---- invitations -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NewInvitation:
    id: UUID
    tenant_id: str
    email: str
    role: str
    token_hash: str
    invited_by: str
    expires_at: datetime


async def insert_invitation(conn: Conn, invitation: NewInvitation) -> DictRow:
    """Write the invitation; an earlier one still open for the same address is revoked."""
    await conn.execute("UPDATE invitations SET revoked_at = now() WHERE tenant_id = %s AND email = %s"
                       " AND accepted_at IS NULL AND revoked_at IS NULL", [invitation.tenant_id, invitation.email])
    row = await (await conn.execute(
        f"INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by, expires_at)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {INVITATION_COLUMNS}",
        [invitation.id, invitation.tenant_id, invitation.email, invitation.role, invitation.token_hash,
         invitation.invited_by, invitation.expires_at])).fetchone()
    assert row is not None, "an INSERT ... RETURNING gives its row"
    return row


async def note_mailing(conn: Conn, invitation_id: UUID, *, error: str | None) -> DictRow | None:
    return await (await conn.execute(
        f"UPDATE invitations SET mailed_at = CASE WHEN %s::text IS NULL THEN now() ELSE mailed_at END,"
        f" mail_error = %s WHERE id = %s RETURNING {INVITATION_COLUMNS}", [error, error, invitation_id])).fetchone()


async def list_invitations(conn: Conn, tenant_id: str) -> list[DictRow]:
    """The tenant's invitations still open (neither accepted, revoked nor expired), newest first."""
    return await (await conn.execute(
        f"SELECT {INVITATION_COLUMNS} FROM invitations WHERE tenant_id = %s AND accepted_at IS NULL"
        " AND revoked_at IS NULL AND expires_at > now() ORDER BY created_at DESC", [tenant_id])).fetchall()


async def read_invitation(conn: Conn, tenant_id: str, *, invitation_id: UUID) -> DictRow | None:
    return await (await conn.execute(f"SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = %s AND tenant_id = %s",
                                     [invitation_id, tenant_id])).fetchone()


async def revoke_invitation(conn: Conn, tenant_id: str, *, invitation_id: UUID) -> DictRow | None:
    return await (await conn.execute(
        f"UPDATE invitations SET revoked_at = now() WHERE id = %s AND tenant_id = %s AND accepted_at IS NULL"
        f" AND revoked_at IS NULL RETURNING {INVITATION_COLUMNS}", [invitation_id, tenant_id])).fetchone()


async def open_invitation(conn: Conn, token_hash: str, *, lock: bool = False) -> DictRow | None:
    """The invitation with this link, while it can still be accepted."""
    return await (await conn.execute(
        f"SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = %s AND accepted_at IS NULL"
        f" AND revoked_at IS NULL AND expires_at > now(){' FOR UPDATE' if lock else ''}", [token_hash])).fetchone()


async def mark_accepted(conn: Conn, invitation_id: UUID, *, member_id: UUID) -> None:
    await conn.execute("UPDATE invitations SET accepted_at = now(), accepted_by = %s WHERE id = %s",
                       [member_id, invitation_id])


# ---- sign-in links -----------------------------------------------------------------------


async def insert_sign_in_link(conn: Conn, member: DictRow, *, token_hash: str, expires_at: datetime) -> None:
    await conn.execute("INSERT INTO sign_in_links (token_hash, tenant_id, member_id, expires_at) VALUES (%s, %s, %s, %s)",
                       [token_hash, member["tenant_id"], member["id"], expires_at])


async def use_sign_in_link(conn: Conn, token_hash: str) -> DictRow | None:
    """The live member a sign-in link was sent to, the link used up; None when it was used,
    has expired, or its member has gone."""
    return await (await conn.execute(
        f"UPDATE sign_in_links l SET used_at = now() FROM members m WHERE l.token_hash = %s AND l.used_at IS NULL"
        f" AND l.expires_at > now() AND m.id = l.member_id AND m.{LIVE}"
        f" RETURNING {', '.join('m.' + c.strip() for c in MEMBER_COLUMNS.split(','))}", [token_hash])).fetchone()
