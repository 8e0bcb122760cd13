from services.common.runtime import run
from services.router.app import build
from services.router.settings import RouterSettings

if __name__ == "__main__":
    run(RouterSettings, build)
