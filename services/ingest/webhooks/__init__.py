"""Webhooks and events, one feature package: how a client hears of its jobs, by a signed webhook
(endpoints, secrets, every attempt, redelivery; delivery sends them) or by reading a job's event
log, as a page or live (Server-Sent Events).

Its face, what other features may use: where a webhook may be sent (`check_webhook_url`, when
a job or an evaluation names one; `webhook_guard`, for the evaluation runner's own webhook).

    routes/      `/v1/webhook-endpoints`, `/v1/webhook-attempts`, a job's attempts and secret
                 (webhooks.py); a job's event log and the tenant's jobs live (events.py)
    targets.py   where a tenant may ask for webhooks to be sent (public addresses only)
"""

from services.ingest.webhooks.targets import check_webhook_url, webhook_guard

__all__ = ["check_webhook_url", "webhook_guard"]
