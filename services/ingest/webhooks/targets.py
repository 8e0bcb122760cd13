"""Where a tenant may ask for webhooks to be sent: checked when a job or an endpoint names the URL."""

from services.common import targets
from services.common.problems import Problem
from services.ingest.settings import IngestSettings


def webhook_guard(settings: IngestSettings) -> targets.Guard:
    """Webhook receivers: public addresses, and the networks opened for webhooks alone; no redirect."""
    return targets.Guard.of(targets.Purpose.WEBHOOK_RECEIVERS, settings.webhook_allowed_networks)


async def check_webhook_url(url: str, settings: IngestSettings) -> None:
    """A webhook URL must be http(s) and resolve to public addresses only (SSRF), unless the
    deployment allows the network; delivery checks again when it sends."""
    try:
        await webhook_guard(settings).address(url)
    except targets.RefusedTarget as refused:
        raise Problem(status=422, slug="webhook-url-refused", detail=f"webhooks cannot be sent to {url!r}: {refused}") from None
