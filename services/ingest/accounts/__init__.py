"""Accounts: tenants, their API keys, the plans they are on and the limits those plans set.

Its modules besides those named above:
    prompt_screening.py  prompts screened at submission, before any hold or provider call
    roles.py             scopes and roles: what a caller may do, written once
    spend_caps.py        what a job is refused at the door for with a 402, as ingest judges it on
                         the ledger's quote
"""
