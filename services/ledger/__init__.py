"""The ledger: prepaid credits, reserved on submission and charged on delivery.

app.py                 wiring: bus consumers, the HTTP app; gRPC and sweepers through LedgerApp
__main__.py            `python -m services.ledger`: the service only (its commands are `genline`'s)
cli.py                 its `genline` commands: grant, replay ledger, replay audit
service.py             the operations: a batch applied to a `Book` (loaded, decided on, written back), the
                       sweep, grants, report policies, alerts raised; each in its transaction
handlers.py            events in: what the ledger consumes, and which `Book` decision each event calls
domain.py              the rules without I/O: a `Book` of accounts, two-phase transfers, grants, the journal
records.py             the records the book holds: accounts, transfers, grants, journal lines
pricing.py             a job's price in the price book (bulk work at the batch discount), and what its
                       settlement charges, without I/O
evaluations.py         an evaluation's images charged at the price book's price, once, without I/O
balances_replayed.py   every account's balances from the ledger's events alone, without I/O
key_caps.py            spend caps per API key, without I/O: a key's spend per day and month, a hold within them
alerts.py              alerts a tenant receives (balance low, grant expiring, key cap reached), once per crossing
store/                 all of its SQL: the book loaded (locked) and written back, accounts, alerts, audit, replay
payments/              money in through a payment gateway (Stripe): checkouts, auto top-up, refunds, disputes
pricebook.py           credits per delivered image by template × tier (pricebook.yaml)
routes/                the HTTP API: admin grants, settings, reconciliation, Stripe's payment webhooks
                       (here), the audit trail's admin view (audit.py), the internal billing API ingest
                       calls (billing.py), one tenant's trail for ingest's /v1/audit (tenant_audit.py), the
                       evaluation charges ingest asks for (evaluations.py)
grpc.py                the gRPC server: GetBalance, Quote, ListEntries, GetKeySpend, GetAlerts, SetAlertSettings
metrics.py             counters of credits and money the ledger announced
audit.py               the audit trail of every service's AuditRecorded events, kept once each
audit_replay.py        `genline replay audit`: rebuild the audit trail and compare
replay.py              `genline replay ledger`: rebuild every account from events and compare
settings.py            the ledger's settings
migrations/            the ledger's schema

Its modules besides those named above:
    training.py       a job's training line, without I/O
"""
