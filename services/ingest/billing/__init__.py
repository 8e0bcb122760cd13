"""Billing, one feature package: what a tenant's work costs and what the tenant holds, buys and
spends. Prices before paying and the balance (the ledger's, over gRPC), buying credits (checkout
and auto top-up, through the ledger's billing API), the alerts raised before the money runs out,
and usage: where the tenant stands against its plan, and its spend per day and per end user.

Its face exports nothing: no other feature uses it; app.py mounts its routes.

    routes/      `/v1/quotes` and `/v1/account` (account.py), `/v1/account/alerts` (alerts.py),
                 `/v1/billing` (credits.py), `/v1/usage` (usage.py)
"""
