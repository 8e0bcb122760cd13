from pydantic import SecretStr

from services.common.settings import ServiceSettings


class LedgerSettings(ServiceSettings):
    service_name: str = "ledger"
    http_port: int = 8082
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    price_book_path: str | None = None  # the packaged pricebook.yaml when unset
    reservation_timeout_s: int = 24 * 3600
    report_window_s: int = 7 * 24 * 3600
    sweep_interval_s: float = 30.0
    # Admin API and payment webhooks: no defaults, so they stay off until configured.
    admin_token: SecretStr | None = None
    payment_webhook_secret: SecretStr | None = None
    payment_webhook_tolerance_s: int = 300
