"""The scorer service: scores every candidate and selects what may ship."""

from services.common.contracts import TOPICS
from services.common.runtime import build_worker
from services.scorer import handlers
from services.scorer.settings import ScorerSettings


def build(settings: ScorerSettings):
    return build_worker("scorer", settings, [TOPICS["router"]], handlers.register)
