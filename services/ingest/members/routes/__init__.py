"""The members' HTTP routes, one module per resource; they do not import one another.

    members.py   `/v1/members`, `/v1/service-accounts`, `/v1/invitations`, `/v1/invitation-links`,
                 `/v1/roles`, `/v1/me`
    sign_in.py   `/v1/sessions`: the console's sessions, and sign-in by a link mailed
    sso.py       `/v1/sso`: the console's single sign-on through a tenant's own OpenID Connect provider
    admin.py     `/admin/v1/tenants/{tenant}/invitations`: an operator's invitations, on the admin port
"""
