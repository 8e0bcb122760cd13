"""The router service: turns admitted jobs into stored candidates."""

from services.common.runtime import build_worker
from services.router import handlers
from services.router.settings import RouterSettings


def build(settings: RouterSettings):
    return build_worker("router", settings, ["ledger"], handlers.register)
