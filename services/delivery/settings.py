from pydantic import Field, SecretStr, model_validator

from services.common.settings import SealedContentSettings, refuse_weak_secret


class DeliverySettings(SealedContentSettings):
    service_name: str = "delivery"
    http_port: int = 8085
    link_ttl_s: int = 3600
    # Jobs are delivered in fair turns across tenants (services/common/bus/read_ahead.py), and
    # their files rendered (decoded, watermarked, encoded, signed) by this many worker
    # processes, in the same turns (services/delivery/rendering.py); 0: one a CPU core.
    consumer_fair_turns: bool = True
    render_workers: int = Field(0, ge=0)
    # One more worker, at the service's own priority, for the file of a tenant with nothing
    # else under way while the others are busy (rendering.py's spare lane).
    render_spare_lane: bool = True
    # A copy to the public bucket is tried this many times, with backoff, before the job
    # fails at stage delivery (DeliveryFailed, uncharged).
    copy_attempts: int = 4
    copy_backoff_s: float = 0.5
    copy_backoff_max_s: float = 5.0
    # Webhooks: a failed attempt is retried after each of these delays in turn (±jitter of
    # each), then given up: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, about 28 h in all,
    # Standard Webhooks' reference schedule. Each attempt may take webhook_timeout_s.
    webhook_retry_schedule_s: list[float] = [5, 300, 1800, 7200, 18000, 36000, 36000]
    webhook_retry_jitter: float = 0.2
    webhook_timeout_s: float = 15.0
    # Messages sent side by side, and the safety-net poll for due retries (commits wake it).
    webhook_concurrency: int = 16
    webhook_poll_interval_s: float = 1.0
    # How long a sender holds a message it is sending before another may take it over.
    webhook_claim_s: float = 120.0
    # After a secret rotation the old secret signs too for this long, unless the rotation says.
    webhook_secret_overlap_s: float = 24 * 3600
    # Networks webhooks may reach although they are not public (e.g. ["127.0.0.0/8"] on a laptop).
    webhook_allowed_networks: list[str] = []
    # The retention sweeper's round, and how long candidates that were not delivered
    # (rejected ones above all) are kept for audits, whatever a tenant's retention.
    retention_sweep_interval_s: float = 3600.0
    rejected_audit_days: int = 30
    # The router's copies of hosted providers' outputs serve only a resumed call: the sweeper
    # removes a job's once it ended, and any once this old.
    provider_copies_hours: float = Field(24.0, gt=0)
    # Content Credentials (services/delivery/provenance.py): the signing certificate's chain
    # (PEM, in the setting or a file: the end entity, then its issuers; key usage
    # digitalSignature and an EKU of emailProtection or documentSigning), and its key (ES256
    # or Ed25519, PKCS#8 PEM) from a Secret, or wrapped under a key-encryption key in a key
    # file (the embedded stack's way). Required in production; unset elsewhere, a process
    # signs under a CA of its own that no verifier trusts. An RFC 3161 timestamp authority,
    # where one is configured.
    provenance_certificate_chain: str | None = None
    provenance_certificate_chain_file: str | None = None
    provenance_signing_key: SecretStr | None = None
    provenance_signing_key_file: str | None = None
    provenance_kek_file: str | None = None
    provenance_tsa_url: str | None = None

    @model_validator(mode="after")
    def provenance_credentials(self) -> "DeliverySettings":
        has_key = self.provenance_signing_key is not None or bool(self.provenance_signing_key_file)
        has_chain = bool(self.provenance_certificate_chain or self.provenance_certificate_chain_file)
        if self.environment == "production" and not (has_chain and has_key):
            raise ValueError("GENLINE_PROVENANCE_CERTIFICATE_CHAIN (or _FILE) and GENLINE_PROVENANCE_SIGNING_KEY (or"
                             " _SIGNING_KEY_FILE with GENLINE_PROVENANCE_KEK_FILE) must be set in production: every"
                             " delivered image is signed")
        if self.provenance_signing_key_file and not self.provenance_kek_file:
            raise ValueError("GENLINE_PROVENANCE_SIGNING_KEY_FILE holds a wrapped key: set GENLINE_PROVENANCE_KEK_FILE")
        if self.provenance_signing_key is not None:
            refuse_weak_secret("GENLINE_PROVENANCE_SIGNING_KEY", self.provenance_signing_key.get_secret_value())
        return self
