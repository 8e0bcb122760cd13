"""The scorer service: scores every candidate and selects what may ship."""

from services.common.runtime import build_worker
from services.scorer import handlers
from services.scorer.settings import ScorerSettings


def build(settings: ScorerSettings):
    return build_worker("scorer", settings, ["router", "ingest"], handlers.register)
