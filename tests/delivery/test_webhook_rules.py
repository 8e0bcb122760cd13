"""Webhook rules without I/O: ids, signatures, the retry schedule, what an answer means."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.delivery import domain


def test_a_webhook_id_is_stable_per_event_and_target():
    job = uuid4()
    first = domain.webhook_id(job, "job.succeeded", target="endpoint-a")
    assert first == domain.webhook_id(job, "job.succeeded", target="endpoint-a")
    assert first.startswith("msg_")
    assert len({first, domain.webhook_id(job, "job.succeeded", target="job"), domain.webhook_id(job, "job.failed", target="endpoint-a"),
                domain.webhook_id(uuid4(), "job.succeeded", target="endpoint-a")}) == 4


def test_every_secret_in_force_signs_and_each_verifies_alone():
    old, new, stranger = (domain.new_webhook_secret() for _ in range(3))
    at = datetime.now(UTC)
    body = domain.webhook_body("job.succeeded", at, view={"id": "j"})
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": domain.signature_header([new, old], domain.WebhookPost("msg_1", at, body))}
    assert Webhook(new).verify(body, headers)["data"] == {"id": "j"}
    assert Webhook(old).verify(body, headers)["type"] == "job.succeeded"
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body.replace(b'"j"', b'"k"'), headers)


def test_retries_follow_the_schedule_with_jitter_then_stop():
    schedule = domain.RetrySchedule([5, 300, 1800], jitter=0.2)
    assert schedule.delay_s(1, rand=0.5) == 5
    assert schedule.delay_s(2, rand=0.0) == pytest.approx(240)
    assert schedule.delay_s(3, rand=1.0) == pytest.approx(2160)
    assert schedule.delay_s(4) is None


def test_only_a_2xx_delivers_and_a_410_is_gone():
    assert domain.attempt_outcome(204) == "delivered"
    assert domain.attempt_outcome(410) == "gone"
    assert [domain.attempt_outcome(s) for s in (None, 301, 404, 429, 500)] == ["retry"] * 5


def test_a_job_or_endpoint_filter_selects_events():
    assert domain.wanted("job.failed", None)
    assert domain.wanted("job.failed", ["job.failed"])
    assert not domain.wanted("job.succeeded", ["job.failed"])
    assert not domain.wanted("job.progress", None)
