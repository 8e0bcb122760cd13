"""Money in: payments through a payment gateway (Stripe first), and what they do to credits.

gateway.py         the interface a processor implements, and the notices its events become
stripe_gateway.py  Stripe through its official library: Checkout Sessions, off-session
                   PaymentIntents, webhook events verified by `stripe.Webhook.construct_event`
rules.py           the arithmetic without I/O: a refund's share, a dispute's hold, where a payment's state may move
retries.py         when a declined auto top-up may be charged again, as the card networks allow, without I/O
service.py         Payments: checkouts opened, notices applied in one transaction each
auto_topup.py      auto top-ups charged off-session, and what a decline does (a retry scheduled, or the rule paused)

The payment tables' SQL is in the ledger's store (store/payments.py); the internal HTTP API
ingest calls for a tenant's billing (checkout, auto top-up) is routes/billing.py.
"""
