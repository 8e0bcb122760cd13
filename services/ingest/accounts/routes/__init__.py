"""Keys and accounts' routes; they do not import one another.

    keys.py              `/v1/api-keys`: a tenant's own keys
    prompt_screening.py  `/v1/account/prompt-screening`: the tenant's prompt rules and its policy
                         when the moderation provider does not answer
"""
