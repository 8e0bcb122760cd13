from typing import ClassVar

from pydantic import SecretStr, model_validator

from services.common.settings import AdminApiSettings, refuse_weak_secret

# The ledger's admin API and payment webhook stay off without these; the local stack turns
# them on with values that say what they are. Never defaults of the settings themselves.
DEV_LEDGER_SECRETS = {"admin_token": "genline-dev-admin-token-not-for-production",
                      "payment_webhook_secret": "whsec_genline_dev_not_for_production"}


class LedgerSettings(AdminApiSettings):
    service_name: str = "ledger"
    uses_object_store: ClassVar[bool] = False  # credits, not images: the ledger holds no object-store key
    http_port: int = 8082
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    price_book_path: str | None = None  # the packaged pricebook.yaml when unset
    reservation_timeout_s: int = 24 * 3600
    report_window_s: int = 7 * 24 * 3600
    sweep_interval_s: float = 30.0
    # How often a replica looks for alerts due (balance low, grant expiring, key cap reached).
    alert_interval_s: float = 15.0
    # The ledger's outbox is its journal: every credit movement, kept for ever, from which
    # `genline replay ledger` rebuilds every balance.
    outbox_retention_s: float | None = None
    # Payment webhooks: no default, so they stay off until configured.
    payment_webhook_secret: SecretStr | None = None
    payment_webhook_tolerance_s: int = 300
    # Stripe's API, for checkouts and auto top-ups: off without a key. The base is Stripe's
    # own unless set (another endpoint speaking Stripe's API, e.g. a test double on loopback).
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str | None = None
    # Auto top-up: how often requested charges (and retries whose time has come) are sent, and
    # when a charge left without an answer is sent again (same idempotency key). When a declined
    # charge is tried again is the card networks' rule (payments/retries.py), not a setting.
    auto_topup_poll_s: float = 1.0
    auto_topup_stale_s: float = 60.0

    @model_validator(mode="after")
    def reject_dev_secrets_in_production(self) -> "LedgerSettings":
        """`make run` sets the dev values for these; they must never reach production."""
        if self.environment == "production":
            for name, dev_value in DEV_LEDGER_SECRETS.items():
                value = getattr(self, name)
                if value is not None and value.get_secret_value() == dev_value:
                    raise ValueError(f"GENLINE_{name.upper()} is the development value; set a real secret in production")
                if value is not None:
                    refuse_weak_secret(f"GENLINE_{name.upper()}", value.get_secret_value())
        return self
