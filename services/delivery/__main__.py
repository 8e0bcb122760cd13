from services.common.runtime import run
from services.delivery.app import build
from services.delivery.settings import DeliverySettings

if __name__ == "__main__":
    run(DeliverySettings, build)
