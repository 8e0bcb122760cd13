"""The members' SQL.

    members.py    members and service accounts, who owns which API key, invitations and sign-in links
    sessions.py   the console's sessions, the tenants' identity providers, sign-ins under way and the
                  id_tokens already used (the live session a request names is the kernel's read,
                  store/callers.py)
"""
