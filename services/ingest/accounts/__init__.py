"""Accounts: tenants, their API keys, the plans they are on and the limits those plans set,
and where a tenant may have its webhooks sent."""
