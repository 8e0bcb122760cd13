"""The delivery service: publishes selected images and signs their links."""

from services.common.runtime import build_worker
from services.delivery import handlers
from services.delivery.settings import DeliverySettings


def build(settings: DeliverySettings):
    return build_worker("delivery", settings, ["scorer", "ingest"], handlers.register)
