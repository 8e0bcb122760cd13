"""The delivery service: publishes selected images, signs their links, sends webhooks, erases
jobs and keeps each tenant's images only as long as its retention says."""

from starlette.applications import Starlette

from services.common.bus import EventConsumer
from services.common.internal_calls import guard, verifier_of
from services.common.runtime import ServiceRuntime, build_worker
from services.common.storage import ObjectStore
from services.delivery import handlers
from services.delivery.retention import RetentionSweeper
from services.delivery.routes import NotFound, WebhookApi, not_found_handler
from services.delivery.settings import DeliverySettings
from services.delivery.webhooks import WebhookSender


def build(settings: DeliverySettings) -> tuple[ServiceRuntime, Starlette]:
    senders: list[WebhookSender] = []
    publishers: list[handlers.Publisher] = []
    objects_of: list[ObjectStore] = []  # the worker's one object store, the one its readiness pings

    def register(consumer: EventConsumer, objects: ObjectStore, settings_: DeliverySettings) -> None:
        objects_of.append(objects)
        senders.append(WebhookSender(pool=consumer.pool, relay=consumer.relay, objects=objects, settings=settings_))
        publishers.append(handlers.Publisher.of(consumer.pool, objects, settings=settings_))
        handlers.register(consumer, publishers[0], sender=senders[0])

    runtime, app = build_worker(handlers.CONSUMES, settings, register=register)
    sender = senders[0]
    runtime.startup_hooks.append(sender.start)
    runtime.shutdown_hooks.append(sender.stop)
    runtime.shutdown_hooks.append(publishers[0].renderer.close)
    verifier = verifier_of(settings)
    app.router.routes.extend(guard(route, verifier, capability="webhooks") for route in WebhookApi(runtime, sender, settings=settings).routes())
    app.add_exception_handler(NotFound, not_found_handler)
    sweeper = RetentionSweeper(runtime, objects_of[0], settings=settings)
    runtime.startup_hooks.append(sweeper.start)
    runtime.shutdown_hooks.append(sweeper.stop)
    return runtime, app
