from services.common.runtime import run
from services.scorer.app import build
from services.scorer.settings import ScorerSettings

if __name__ == "__main__":
    run(ScorerSettings, build)
