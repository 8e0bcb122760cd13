"""Delivery's parts share one object store: the one its readiness check pings is the one its
handlers, its webhook sender and its retention sweeper write through."""

from services.delivery.app import build
from services.delivery.retention import RetentionSweeper
from services.delivery.settings import DeliverySettings
from services.delivery.webhooks import WebhookSender
from tests.conftest import settings_for


def test_every_part_of_delivery_uses_the_object_store_its_readiness_pings(endpoints):
    runtime, _ = build(settings_for(endpoints, DeliverySettings))
    pinged = runtime.readiness_checks["object_store"].__self__
    owners = [hook.__self__ for hook in runtime.startup_hooks if hasattr(hook, "__self__")]
    sweepers = [o for o in owners if isinstance(o, RetentionSweeper)]
    senders = [o for o in owners if isinstance(o, WebhookSender)]
    assert len(sweepers) == 1 and len(senders) == 1
    assert sweepers[0].objects is pinged and senders[0].objects is pinged
