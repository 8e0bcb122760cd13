"""The ledger: prepaid credits, reserved on submission and charged on delivery.

app.py                 the service: bus consumers, HTTP and gRPC servers, sweepers
__main__.py            `python -m services.ledger`
handlers.py            events in, a `Book` loaded and decided on, events out, a batch per transaction
domain.py              the rules without I/O: accounts, two-phase transfers, grants, the journal, replay
key_caps.py            spend caps per API key, without I/O: a key's spend per day and month, a hold within them
alerts.py              alerts a tenant receives (balance low, grant expiring, key cap reached), once per crossing
store.py               loading (locked) and writing back the state one batch touches
payments/              money in through a payment gateway (Stripe): checkouts, auto top-up, refunds, disputes
pricebook.py           credits per delivered image by template × tier (pricebook.yaml)
routes.py              the HTTP API: admin grants, settings, reconciliation, Stripe's payment webhooks
grpc.py                the gRPC server: GetBalance, Quote, ListEntries, GetKeySpend, GetAlerts, SetAlertSettings
metrics.py             counters of credits and money the ledger announced
audit.py               the audit trail of every service's AuditRecorded events, and its admin view
audit_replay.py        `genline replay audit`: rebuild the audit trail and compare
replay.py              `genline replay ledger`: rebuild every account from events and compare
settings.py            the ledger's settings
migrations/            the ledger's schema
"""
