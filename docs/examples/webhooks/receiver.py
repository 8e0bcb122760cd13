"""Receive Genline's webhooks: a small receiver, an endpoint registered for it, and every
request checked with verify_webhook before anything is done with it."""

import os
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from genline_client import Genline, verify_webhook

received = {"/hooks": queue.Queue(), "/this-job": queue.Queue()}  # by path


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))  # the raw bytes: they are what is signed
        if self.path not in received:
            self.send_response(404)
        else:
            received[self.path].put((dict(self.headers), body))
            self.send_response(204)  # any 2xx is delivered; anything else is retried
        self.end_headers()

    def log_message(self, *args):
        pass


def next_webhook(path: str, secret: str, job_id) -> tuple[dict, bytes, dict]:
    """The next genuine webhook about `job_id` at `path` (queue.Empty after a minute without one)."""
    while True:
        headers, body = received[path].get(timeout=60)
        event = verify_webhook(headers, body, secret)  # WebhookVerificationError unless genuine and fresh
        if event["data"]["id"] == str(job_id):
            return headers, body, event


server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)  # in production: a public HTTPS URL
threading.Thread(target=server.serve_forever, daemon=True).start()
here = f"http://127.0.0.1:{server.server_port}"

api = httpx.Client(base_url=os.environ["GENLINE_API_URL"], timeout=30,
                   headers={"Authorization": f"Bearer {os.environ['GENLINE_API_KEY']}"})
endpoint = api.post("/v1/webhook-endpoints", json={"url": f"{here}/hooks", "description": "docs example",
                                                   "event_types": ["job.succeeded", "job.failed"]})
endpoint = endpoint.raise_for_status().json()
secret = endpoint["secret"]  # shown only in this answer: keep it with your receiver's configuration
job_secret = api.get("/v1/webhooks/default/secret").raise_for_status().json()["key"]
try:
    with Genline() as client:
        # The endpoint hears about every job of yours; this job also names a URL of its own.
        job = client.jobs.create("a kite over the dunes", tier="low-cost", webhook_url=f"{here}/this-job")
        headers, _, event = next_webhook("/hooks", secret, job.id)
        print(event["type"], event["data"]["id"], "webhook-id", headers["webhook-id"])
        assert event["type"] == "job.succeeded" and event["data"]["billing"]["state"] == "settled"
        next_webhook("/this-job", job_secret, job.id)  # a job's own URL: signed with the job secret

    # Every attempt is on record, newest first, once its answer is in.
    for _ in range(30):
        attempts = api.get(f"/v1/webhook-endpoints/{endpoint['id']}/attempts").raise_for_status().json()["data"]
        if mine := [a for a in attempts if a["job_id"] == str(job.id)]:
            break
        time.sleep(1)
    attempt = mine[0]
    print("attempt:", attempt["status_code"], f"{attempt['latency_ms']} ms", attempt["message_state"])

    # Rotate the secret: during the overlap both secrets sign each request (two signatures).
    rotated = api.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json={"overlap_s": 3600})
    new_secret = rotated.raise_for_status().json()["secret"]

    # Send the attempt again: the same event, with the same webhook-id (deduplicate on it).
    api.post(f"/v1/webhook-attempts/{attempt['id']}/redeliver").raise_for_status()
    again, body, _ = next_webhook("/hooks", new_secret, job.id)
    verify_webhook(again, body, secret)  # the old secret still verifies until the overlap ends
    assert again["webhook-id"] == headers["webhook-id"]
    print("redelivered, signatures:", again["webhook-signature"])
finally:
    api.delete(f"/v1/webhook-endpoints/{endpoint['id']}").raise_for_status()  # nothing more is sent there
    server.shutdown()
