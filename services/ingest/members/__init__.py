"""Members: a tenant's people and machines, everything about them in one place: members and
service accounts with their roles, invitations, sign-in by mail and by single sign-on, and the
console's sessions; their routes, their rules and their SQL. The kernel checks a request's
session (session_auth.py) and holds the team's settings (team_settings.py); this package opens,
lists and ends sessions.

Its face, what other features may use: who owns an API key, and a member read by id
(`key_owner`, `set_key_owner`, `read_member`, for the keys routes).

    routes/        the HTTP routes: members, service accounts, invitations and roles (members.py),
                   sessions and sign-in by mail (sign_in.py), single sign-on (sso.py), an
                   operator's invitations on the admin port (admin.py)
    store/         the members' SQL: members, invitations and sign-in links (members.py), sessions,
                   identity providers and sign-ins under way (sessions.py)
    team.py        changes to members with their audit records: roles, removals, service accounts, invitations
    links.py       signed, expiring, single-use links (invitations, sign-in by mail)
    mail.py        mail through the operator's SMTP server
    sessions.py    console sessions: opened at sign-in with their cookies, cleared at sign-out
    oidc.py        the OpenID Connect relying party: discovery, JWKS, PKCE, the id_token checked (joserfc)
    sso.py         a tenant's provider, and who a verified id_token is (linked, invited, just in time)
    web.py         what the sign-in routes share: base URL, redirect URI, the throttle
    wiring.py      the link signer, mailer and provider client on app.state, as dependencies
"""

from services.ingest.members.store.members import key_owner, read_member, set_key_owner

__all__ = ["key_owner", "read_member", "set_key_owner"]
