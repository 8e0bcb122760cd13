"""Scopes and roles: what a caller may do, written once. A route declares the scope it needs
(services.ingest.deps.Scoped); an API key holds a set of scopes; a member's role is a set of
scopes from ROLES below. The API's dependencies, the console (through `GET /v1/roles`) and the
documentation's role table (docs/reference/roles.md, checked against this module) all read it.

A key a member or service account owns can never do more than its owner's role allows: what
it may do is the key's scopes within the owner's role, read on every request, so a demotion
narrows the owner's keys at once."""

from collections.abc import Iterable
from typing import Literal, cast, get_args

# Every scope, in the order listings show them, with what it allows.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    "jobs:write": "submit, cancel and erase jobs; upload input photos",
    "jobs:read": "read jobs, their candidates, prompts, events and streams",
    "receipts:read": "read the signed receipts of final jobs (they hold no prompt)",
    "account:read": "read the balance, quotes, usage, templates, alerts and the billing page",
    "keys:manage": "create API keys and manage the keys one owns",
    "keys:admin": "manage every API key of the tenant, whoever owns it",
    "webhooks:manage": "manage webhook endpoints and alert settings",
    "billing:manage": "buy credits and set auto top-up",
    "members:manage": "invite, remove and change the roles of members; manage service accounts",
    "audit:read": "read and export the tenant's audit log",
    "sso:manage": "configure the tenant's single sign-on",
}
SCOPES: tuple[str, ...] = tuple(SCOPE_DESCRIPTIONS)

Role = Literal["owner", "admin", "developer", "billing", "viewer"]
ROLE_NAMES: tuple[Role, ...] = get_args(Role)

# The role table. Listed from the most to the least powerful; a member may grant or take
# away only a role whose scopes are all within their own (so an admin cannot make an owner).
ROLES: dict[Role, frozenset[str]] = {
    "owner": frozenset(SCOPES),
    "admin": frozenset(SCOPES) - {"sso:manage"},
    "developer": frozenset({"jobs:write", "jobs:read", "receipts:read", "account:read", "keys:manage",
                            "webhooks:manage"}),
    "billing": frozenset({"account:read", "receipts:read", "billing:manage"}),
    "viewer": frozenset({"jobs:read", "receipts:read", "account:read"}),
}
ROLE_DESCRIPTIONS: dict[Role, str] = {
    "owner": "everything, single sign-on included; a tenant always has at least one",
    "admin": "everything but single sign-on: members, every key, billing, the audit log",
    "developer": "jobs, webhooks and the API keys they own",
    "billing": "buys credits, reads the balance, usage and receipts; reads no prompt",
    "viewer": "reads jobs, receipts and the account; changes nothing",
}


def scopes_of(role: str) -> frozenset[str]:
    """The scopes of `role`; none for a name that is not a role (a row from a newer version)."""
    return ROLES.get(cast(Role, role), frozenset())


def effective_scopes(key_scopes: Iterable[str], owner_role: str | None) -> frozenset[str]:
    """What a key may do: its scopes, within its owner's role when a member or service account
    owns it (a key nobody owns acts for the tenant with the scopes it was issued with)."""
    held = frozenset(key_scopes)
    return held if owner_role is None else held & scopes_of(owner_role)


def may_grant(granter: frozenset[str], role: str) -> bool:
    """Whether a caller holding `granter` may give (or take away) `role`."""
    return role in ROLES and scopes_of(role) <= granter


def strongest(roles: Iterable[str]) -> Role | None:
    """The most powerful of `roles` (the order of ROLES), or None when none is a role."""
    found = set(roles)
    return next((role for role in ROLE_NAMES if role in found), None)
