"""Accounts: tenants, their API keys, the plans they are on and the limits those plans set.

Its modules besides those named above:
    prompt_screening.py  prompts screened at submission, before any hold or provider call
    prompt_rules.py      the operator's and the tenant's prompt rules, judged without I/O
    moderation.py        the hosted moderation adapter (OpenAI-style) behind its breaker
    roles.py             scopes and roles: what a caller may do, written once
    spend_caps.py        what a job is refused at the door for with a 402, as ingest judges it on
                         the ledger's quote
"""
