"""The sender's POST against a real HTTP server: the address is checked after resolution, at
send time, and a redirect is recorded, never followed."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.delivery.settings import DeliverySettings
from services.delivery.webhooks import WebhookSender


@pytest.fixture
def redirecting_server():
    """Answers every POST with a 302 to the cloud metadata address, and counts the requests."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.headers["host"])
            self.send_response(302)
            self.send_header("location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port, seen
    server.shutdown()
    server.server_close()


def sender(allowed: list[str]) -> WebhookSender:
    settings = DeliverySettings(database_url="postgresql://unused", s3_access_key_id="unused",
                                s3_secret_access_key="unused", webhook_allowed_networks=allowed, webhook_timeout_s=5)
    return WebhookSender(pool=None, relay=None, objects=None, settings=settings)


async def test_a_redirect_is_recorded_and_not_followed(redirecting_server):
    port, seen = redirecting_server
    webhooks = sender(["127.0.0.0/8"])
    attempt = await webhooks.post(f"http://127.0.0.1:{port}/hook", b"{}", headers={"content-type": "application/json"})
    await webhooks.http.aclose()
    assert attempt.status_code == 302 and attempt.error is None
    assert seen == [f"127.0.0.1:{port}"]  # one request, not a second to where it pointed


async def test_an_address_refused_at_send_time_is_never_contacted(redirecting_server):
    port, seen = redirecting_server
    webhooks = sender([])  # loopback not allowed here
    attempt = await webhooks.post(f"http://localhost:{port}/hook", b"{}", headers={})
    await webhooks.http.aclose()
    assert attempt.status_code is None and attempt.error.startswith("refused:")
    assert seen == []
