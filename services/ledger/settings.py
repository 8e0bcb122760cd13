from pydantic import SecretStr, model_validator

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

    @model_validator(mode="after")
    def reject_dev_secrets_in_production(self) -> "LedgerSettings":
        """`make run` sets dev values for these; they must never reach production."""
        if self.environment == "production":
            for name in ("admin_token", "payment_webhook_secret"):
                value = getattr(self, name)
                if value is not None and "not_for_production" in value.get_secret_value().replace("-", "_"):
                    raise ValueError(f"GENLINE_{name.upper()} is the development value; set a real secret in production")
        return self
