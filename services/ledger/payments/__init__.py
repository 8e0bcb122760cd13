"""Money in: payments through a payment gateway (Stripe first), and what they do to credits.

gateway.py         the interface a processor implements, and the notices its events become
stripe_gateway.py  Stripe through its official library: Checkout Sessions, off-session
                   PaymentIntents, webhook events verified by `stripe.Webhook.construct_event`
rules.py           the arithmetic without I/O: a refund's share, a dispute's hold, what is due
service.py         Payments: checkouts opened, notices applied in one transaction each, auto top-ups charged

The payment tables' SQL is in the ledger's store (store/payments.py); the internal HTTP API
ingest calls for a tenant's billing (checkout, auto top-up) is routes/billing.py.
"""
