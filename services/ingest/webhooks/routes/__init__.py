"""Webhooks' and events' routes; they do not import one another.

    webhooks.py   `/v1/webhook-endpoints`, `/v1/webhook-attempts`, a job's attempts and the per-job secret
    events.py     a job's event log as a page or live as Server-Sent Events, and all of a tenant's jobs live
"""
