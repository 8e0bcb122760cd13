"""Billing's routes; they do not import one another.

    account.py   `/v1/quotes` and `/v1/account`: prices and balances, answered by the ledger over gRPC
    alerts.py    `/v1/account/alerts`: what a tenant is told before its money runs out, and when
    credits.py   `/v1/billing`: buying credits, by checkout or auto top-up, through the ledger
    usage.py     `GET /v1/usage`: the plan, its limits and where the tenant stands; spend per day and
                 per end user or metadata value
"""
