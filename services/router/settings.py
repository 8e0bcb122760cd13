from pydantic import SecretStr, model_validator

from services.common.settings import SealedContentSettings, refuse_weak_secret


class RouterSettings(SealedContentSettings):
    service_name: str = "router"
    # One event at a time: admission waits for room in the attempt queue, and that wait is
    # what pauses consumption when providers are saturated. Lanes would consume past it.
    consumer_lanes: int = 1
    consumer_spare_lanes: bool = False
    # Admissions too are taken in fair turns across tenants: a router busy with one tenant's
    # flood of jobs is slow to admit, and another tenant's job must not wait behind the flood's.
    consumer_fair_turns: bool = True
    http_port: int = 8083
    # A large attempt announces its stored candidates every this many (CandidatesStored), so
    # the scorer scores them while the rest is generated; a smaller attempt announces none.
    chunk_candidates: int = 32
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50052
    # The provider registry; the packaged providers.yaml (local providers only) when unset.
    providers_path: str | None = None
    # API keys of hosted providers, by the secret names the registry gives (JSON object).
    provider_secrets: dict[str, SecretStr] = {}
    # Networks a provider's outputs may be fetched from, although they are not public, on hosts
    # other than the provider's own (its endpoint and credential hosts, which the registry names).
    provider_allowed_networks: list[str] = []
    # Jobs do not name a size yet: every candidate is generated at this one.
    image_width: int = 512
    image_height: int = 512
    # Attempt 1 plus at most this many minus one rework rounds.
    max_attempts: int = 3
    # Attempts waiting in memory (a few hundred bytes each); when full, because every
    # provider is busy, consumption pauses. Fairness reorders only what is queued.
    max_queued_attempts: int = 2000
    max_concurrent_attempts: int = 16
    # A claimed attempt is renewed while it runs; a crashed router's claims lapse after this.
    claim_lease_s: float = 30.0
    # How often to look for attempts no router holds (their router died, or a run failed).
    attempt_poll_interval_s: float = 2.0
    # An attempt that keeps failing inside the router (storage down) is given up after this many tries.
    attempt_max_tries: int = 5
    # While a service an attempt asks does not answer (ingest's data-key API, as ingest
    # restarts), the attempt waits, from the first pause doubling to the second, while its
    # job's deadline allows: that spends none of its tries.
    service_wait_s: float = 0.5
    service_wait_max_s: float = 15.0
    pass_rate_half_life_s: float = 6 * 3600
    # An attempt reads the pass rates every router shares at most this often: the verdicts
    # this process counts it knows at once, other routers' this much later.
    pass_rates_refresh_s: float = 1.0
    # Provider spend per hour (USD, all routers together) above which GenlineSpendHigh fires.
    spend_alert_usd_per_hour: float = 50.0
    breaker_window_s: float = 60.0
    breaker_min_calls: int = 5
    breaker_failure_rate: float = 0.5
    breaker_cooldown_s: float = 30.0
    # The quality breaker per provider and template: opens when at most `max_pass_rate` of
    # the last `window_verdicts` scorer verdicts (within `window_s`) passed, although every
    # call may have returned 200.
    quality_window_verdicts: int = 6
    quality_window_s: float = 600.0
    quality_max_pass_rate: float = 0.2
    quality_cooldown_s: float = 60.0
    retry_base_delay_s: float = 0.5
    retry_max_delay_s: float = 10.0
    # Orders of a subject: an attempt waiting for its identity's training is looked at again
    # this often (the training's end wakes it sooner); links to trained weights last this long;
    # trainings are looked for this often, and this many driven at once by one router.
    identity_wait_s: float = 30.0
    weights_link_ttl_s: int = 6 * 3600
    training_look_interval_s: float = 2.0
    max_concurrent_trainings: int = 8

    @model_validator(mode="after")
    def reject_placeholder_provider_secrets(self) -> "RouterSettings":
        if self.environment == "production":
            for name, secret in self.provider_secrets.items():
                refuse_weak_secret(f"GENLINE_PROVIDER_SECRETS[{name!r}]", secret.get_secret_value())
        return self
