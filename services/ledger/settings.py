from services.common.settings import ServiceSettings


class LedgerSettings(ServiceSettings):
    service_name: str = "ledger"
    http_port: int = 8082
    # Credits per delivered image, by template (the price book; tiers come later).
    unit_prices: dict[str, int] = {"generic": 10, "headshot": 20, "product": 15}
    reservation_timeout_s: int = 3600
