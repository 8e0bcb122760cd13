"""Settings shared by every service: where the broker, the database and the object store are.

Each service subclasses `ServiceSettings` with its own fields. Settings are built once at
startup (never at import) from environment variables prefixed `GENLINE_`.
"""

import hashlib
import re
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.identity import INTERNAL_SERVICES, public_key_of, valid_public_key
from services.common.releases import PREVIOUS, RELEASE, VERSIONS

# Compared after lower-casing and dropping everything but letters and digits, so CHANGE_ME,
# change-me and "Change me" are one placeholder; a real secret is also long enough.
PLACEHOLDER_SECRETS = {"", "changeme", "secret", "password", "minioadmin", "testing", "placeholder", "replaceme",
                       "example", "todo", "xxx", "default", "admin"}
MIN_SECRET_LENGTH = 16


def _normalised(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


def refuse_weak_secret(env_name: str, value: str) -> None:
    """Raise if `value` is a placeholder, however spelt, or shorter than MIN_SECRET_LENGTH."""
    if _normalised(value) in PLACEHOLDER_SECRETS:
        raise ValueError(f"{env_name} is a placeholder; set a real secret in production")
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"{env_name} is shorter than {MIN_SECRET_LENGTH} characters; set a real secret in production")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GENLINE_", extra="ignore")

    service_name: str = "genline"
    # Production unless said otherwise: a service started with missing or placeholder secrets
    # refuses to start, naming the setting. The embedded stack (genline_stack) sets
    # development for what it starts; nothing else defaults to it.
    environment: Literal["development", "test", "production"] = "production"
    log_level: str = "INFO"
    # No log line shows a prompt (clients' prompts may be confidential); off, the lines that
    # concern a job name its prompt, which helps while developing.
    redact_prompts: bool = True
    # Where to send traces (OTLP over HTTP, e.g. http://otel-collector:4318); none by default.
    # OpenTelemetry's own variables are honoured too: OTEL_EXPORTER_OTLP_ENDPOINT (the same),
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the traces' full URL), OTEL_SERVICE_NAME,
    # OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_SDK_DISABLED and
    # OTEL_TRACES_EXPORTER=none (services/common/tracing.py).
    otlp_endpoint: str | None = Field(None, validation_alias=AliasChoices(
        "otlp_endpoint", "GENLINE_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Probes and /metrics on a port of their own (what the kubelet and Prometheus reach, and
    # nothing else); unset, they answer on every port.
    ops_port: int | None = None

    kafka_bootstrap: str = "127.0.0.1:9092"
    # How the service's Kafka clients protect the wire and log in (services/common/
    # kafka_security.py): SASL_SSL in production, as its Strimzi KafkaUser (SCRAM-SHA-512,
    # username genline-<service> unless set), checked against the cluster's CA file.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ca_file: str | None = None
    # An explicit, named exception to the rule above (a broker reachable only over a private
    # link, say): anything that reaches it can then forge events.
    kafka_allow_unauthenticated: bool = False
    topic_namespace: str = "genline"
    # The service's PostgreSQL schema; its name when unset.
    schema_name: str | None = None
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 1_000
    # Static membership: a consumer that comes back under the same id within the session
    # timeout gets its partitions back without stopping the whole group to rebalance. On
    # Kubernetes, the pod's name (a container restarted in place keeps it); unset: dynamic.
    kafka_group_instance_id: str | None = None
    # A consumer that does not poll again within this long is taken out of its group. A
    # batch of consumer_batch_size records must be applied well within it (the scorer's
    # rule: batch × worst scoring time per candidate × 2 < this).
    kafka_max_poll_interval_ms: int = 300_000
    # Topics a service creates itself (what its journal recovers, a dead-letter topic):
    # never fewer replicas than this, and min.insync.replicas one less, at least 1 (set 3 on
    # a real cluster; the embedded broker has one). Partitions are the topic's own: the
    # journal recreates a lost topic with as many as it had, since a job's events keep their
    # order only while its key maps to the same partition. Growing them is a migration, not
    # a setting: docs/guides/kubernetes.md.
    kafka_replication_factor: int = 1
    # The outbox's producer: idempotent (a retried send is written once; the inboxes make
    # a duplicate harmless anyway), acks=all, and its batches compressed (gzip needs no
    # native library; lz4 and zstd need theirs installed). The embedded broker grants no
    # producer ids, so the embedded stack turns idempotence off.
    kafka_idempotent_producer: bool = True
    kafka_compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "gzip"
    # How long a fetch may wait on the broker for new records. Apache Kafka answers as soon
    # as records arrive, so a long wait costs nothing there; Tansu holds every fetch until
    # the wait expires, so on the embedded stack it is the latency of every hop and is short.
    kafka_fetch_max_wait_ms: int = 500
    # The longest a batch consumer waits for records before it looks again; it takes them as
    # soon as a fetch brings them (services/common/bus/positions.py, take_as_they_come). A
    # second would save an idle service five wake-ups a second, but with it the plans' shares
    # test (tests/common/test_fair_turns.py) once left a free tenant's event to a flood's end.
    kafka_batch_timeout_ms: int = 200
    # How often a consumer commits the offsets of what it applied (see positions.OffsetCommits):
    # what a crash delivers again is what the inbox skips.
    kafka_commit_interval_ms: int = 1000

    # This service's identity for internal calls (services/common/identity.py): its Ed25519
    # key (base64url of the 32-byte seed, from a Secret only this service mounts), and the
    # public keys of the services it answers (JSON, name → key, a shared ConfigMap). Both
    # required in production; without them internal calls to it are refused.
    service_key: SecretStr | None = None
    service_keys: dict[str, str] = {}

    database_url: SecretStr
    database_pool_size: int = 8

    s3_endpoint_url: str | None = None
    # Presigned links are signed for the host clients reach, which may differ from the
    # endpoint the services use inside the cluster.
    s3_public_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # The service's own object-store key, which its bucket policy allows only what the service
    # does there (docs/guides/security.md); required of a service that uses the store, and
    # none for one that does not (the ledger, the operators' and auditors' tools).
    uses_object_store: ClassVar[bool] = True
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    internal_bucket: str = "genline-internal"
    public_bucket: str = "genline-public"

    # A local folder with a CLIP model (save_pretrained) for prompt_alignment; the scorer
    # loads it, and ingest rejects jobs whose profile requires it when none is configured.
    clip_model_dir: str | None = None

    consumer_max_attempts: int = 5
    consumer_batch_size: int = 500
    # Jobs a consumer applies side by side (each job's events stay in order); each holds a
    # database connection while it runs, so keep it well below database_pool_size.
    consumer_lanes: int = 4
    consumer_backoff_s: float = 0.2
    # Fair turns (services/common/bus/read_ahead.py): events applied in turns across tenants,
    # read ahead into a buffer of at most `consumer_read_ahead` records (more waits in the
    # broker, as lag), instead of a fetch's batch at a time in the order of its partitions.
    consumer_fair_turns: bool = False
    consumer_read_ahead: int = Field(256, ge=1)
    # With fair turns, while every lane is taken, a tenant with nothing being applied takes a
    # lane more (at most as many more as the lanes); off where the lanes are the back-pressure.
    consumer_spare_lanes: bool = True
    consumer_backoff_max_s: float = 5.0
    # The relay wakes on every commit that adds outbox rows (PostgreSQL NOTIFY); this poll
    # is only the safety net for a lost listening connection.
    outbox_poll_interval_s: float = 5.0
    # How long published rows stay in the outbox, the service's journal (services/common/
    # journal.py); None keeps them for ever. Rows some reader has not read yet always stay.
    outbox_retention_s: float | None = 7 * 24 * 3600
    # How far back a recovery or `genline bus rebuild --all` publishes the journal again: a
    # service restored from a backup younger than this catches up from the bus. Rows older
    # than it that every reader has read are never published again (the ledger keeps them
    # for audits all the same), so the readers' inboxes may forget them. None: no limit,
    # and no inbox ever forgets this service's events.
    bus_republish_window_s: float | None = 7 * 24 * 3600

    # A send the broker has not acknowledged in this long fails, and the relay's pass with
    # it (its rows stay unpublished): a broker that went away never holds a pass for long.
    bus_send_timeout_ms: int = 5_000
    # How often the relay looks at its topic: which broker answers, where each partition
    # ends, how far its readers have read, whether to rotate it, what to prune.
    bus_check_interval_s: float = 5.0
    # Rotate the service's topic once one of its partitions holds this many records and every
    # group reading it has read to its end: for a broker that keeps its whole log and whose
    # fetches cost more as it grows (the embedded stack's). None: never, as on Apache Kafka,
    # whose retention bounds the log.
    bus_rotate_after_records: int | None = None
    # How long a rotation waits for the readers to catch up before it gives up until later.
    bus_rotation_wait_s: float = 10.0
    # On a broker that holds every fetch for its whole wait (the embedded stack's), consumers
    # fetch when a relay says it published to their topics (services/common/bus/wake.py), until
    # a fetch comes back empty, and fetch everything once every `idle_fetch_interval`.
    bus_wake_on_publish: bool = False
    bus_idle_fetch_interval_s: float = 1.0
    # The oldest release whose consumers may read this service's events (services/common/bus/
    # writing.py): during a rolling update the previous one, whose consumers refuse a member
    # they do not know, so events are written as it reads them and what it cannot carry is
    # refused at the door. The operator raises it to this release once every replica of every
    # service runs it (docs/guides/kubernetes.md); a platform installed fresh sets it at once.
    events_compatible_with: str = PREVIOUS.version

    def http_ports(self) -> list[int]:
        """Every port the service's HTTP app listens on."""
        return [self.http_port] + self._ops_ports()

    def _ops_ports(self) -> list[int]:
        return [self.ops_port] if self.ops_port else []

    @model_validator(mode="after")
    def kafka_login(self) -> "ServiceSettings":
        if self.kafka_security_protocol.startswith("SASL"):
            self.kafka_username = self.kafka_username or f"genline-{self.service_name}"
            if self.kafka_password is None:
                raise ValueError(f"GENLINE_KAFKA_PASSWORD must be set with {self.kafka_security_protocol}")
            if self.environment == "production":
                refuse_weak_secret("GENLINE_KAFKA_PASSWORD", self.kafka_password.get_secret_value())
        if self.environment == "production" and self.service_name in INTERNAL_SERVICES \
                and self.kafka_security_protocol != "SASL_SSL" and not self.kafka_allow_unauthenticated:
            raise ValueError(f"GENLINE_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}: production needs"
                             " SASL_SSL (or GENLINE_KAFKA_ALLOW_UNAUTHENTICATED=true where the network alone guards it)")
        return self

    @model_validator(mode="after")
    def known_release(self) -> "ServiceSettings":
        if self.events_compatible_with not in VERSIONS:
            raise ValueError(f"GENLINE_EVENTS_COMPATIBLE_WITH is {self.events_compatible_with!r}: this release"
                             f" ({RELEASE}) writes its events for one of {', '.join(VERSIONS)}")
        return self

    @model_validator(mode="after")
    def valid_service_identity(self) -> "ServiceSettings":
        needed = self.environment == "production" and self.service_name in INTERNAL_SERVICES
        if self.service_key is None and needed:
            raise ValueError("GENLINE_SERVICE_KEY must be set in production (`genline service-keys` makes one)")
        if self.service_key is not None:
            if self.environment == "production":
                refuse_weak_secret("GENLINE_SERVICE_KEY", self.service_key.get_secret_value())
            try:
                public_key_of(self.service_key.get_secret_value())
            except ValueError as error:
                raise ValueError(f"GENLINE_SERVICE_KEY is not an Ed25519 seed (base64url of 32 bytes): {error}") from None
        if needed and not self.service_keys:
            raise ValueError("GENLINE_SERVICE_KEYS must name the services' public keys in production")
        for name, key in self.service_keys.items():
            if not valid_public_key(key):
                raise ValueError(f"GENLINE_SERVICE_KEYS: the key of {name!r} is not an Ed25519 public key")
        return self

    @model_validator(mode="after")
    def object_store_login(self) -> "ServiceSettings":
        if self.uses_object_store and (self.s3_access_key_id is None or self.s3_secret_access_key is None):
            raise ValueError("GENLINE_S3_ACCESS_KEY_ID and GENLINE_S3_SECRET_ACCESS_KEY must be set: the"
                             f" {self.service_name} uses the object store")
        return self

    @model_validator(mode="after")
    def reject_placeholder_secrets(self) -> "ServiceSettings":
        if self.environment == "production":
            if self.s3_secret_access_key is not None:
                refuse_weak_secret("GENLINE_S3_SECRET_ACCESS_KEY", self.s3_secret_access_key.get_secret_value())
            password = urlsplit(self.database_url.get_secret_value()).password
            if password is not None:  # none: peer or certificate authentication
                refuse_weak_secret("the password in GENLINE_DATABASE_URL", password)
        return self


def refuse_missing_or_weak(env_name: str, value: SecretStr | None, *, required: bool) -> None:
    """A secret the service cannot do without in production: refused when missing there,
    and when it is a placeholder anywhere."""
    if value is None:
        if required:
            raise ValueError(f"{env_name} must be set in production")
        return
    refuse_weak_secret(env_name, value.get_secret_value())


class SealedContentSettings(ServiceSettings):
    """A service that opens jobs' sealed contents (the router, the scorer, delivery): where
    ingest's internal data-key API answers (it proves who calls with its service key). A key
    is kept in memory for at most `data_key_cache_s`, and forgotten when the service is done
    with the job."""

    data_key_url: str = "http://127.0.0.1:8081"
    data_key_timeout_s: float = 5.0
    data_key_cache_s: float = 600.0


class AuditorSettings(ServiceSettings):
    """The auditor's replays and audits (`genline replay …`): its own database role
    (genline_auditor, which reads every service's schemas and writes nothing) and KafkaUser
    (genline-auditor, which may only read the topics); no service key, no object store. With
    the jobs' key-encryption key (ingest's settings of the same names) a replay opens the
    sealed prompts and compares them too; without it, it compares everything else and says so."""

    service_name: str = "auditor"
    uses_object_store: ClassVar[bool] = False
    data_key_kek_file: str | None = None
    data_key_kms_key_id: str | None = None
    data_key_kms_endpoint_url: str | None = None

    def opens_sealed_contents(self) -> bool:
        return bool(self.data_key_kek_file or self.data_key_kms_key_id)


# What an operator token may allow; "*" allows everything.
OPERATOR_SCOPES = ("credits:grant", "tenants:manage", "billing:read", "audit:read", "calibration:read",
                   "platform:read")
# The name the single GENLINE_ADMIN_TOKEN goes by in the audit trail; it holds every scope.
LEGACY_OPERATOR = "admin"


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# Hashes of the placeholders as they are usually spelt, so that a token given only by its hash
# is refused too when it is the hash of "changeme" or "CHANGE_ME".
_PLACEHOLDER_HASHES = {sha256_hex(spelling) for p in PLACEHOLDER_SECRETS
                       for spelling in (p, p.upper(), p.replace("me", "_me").upper())}


class OperatorToken(BaseModel):
    """One named operator token: the token itself or its SHA-256 (hex), and what it may do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr | None = None
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    scopes: frozenset[Literal["*", *OPERATOR_SCOPES]] = Field(min_length=1)  # type: ignore[valid-type]  # the tuple above

    @model_validator(mode="after")
    def one_secret(self) -> "OperatorToken":
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give either token or token_sha256")
        return self

    def digest(self) -> str:
        if self.token_sha256:
            return self.token_sha256
        assert self.token is not None  # one_secret: one or the other
        return sha256_hex(self.token.get_secret_value())


class AdminApiSettings(ServiceSettings):
    """A service with an admin API (ingest, ledger): its operator tokens and its port."""

    # One shared token with every scope (GENLINE_ADMIN_TOKEN), kept for existing deployments;
    # named tokens with scopes (GENLINE_ADMIN_TOKENS, JSON name -> {token or token_sha256,
    # scopes}) are the way to go. Without either, the admin API is off.
    admin_token: SecretStr | None = None
    admin_tokens: dict[str, OperatorToken] = {}
    # Where the admin API answers: on this port only, its own listening socket, which a
    # NetworkPolicy can close to everyone else; on the HTTP port when unset (a laptop).
    admin_port: int | None = None

    def http_ports(self) -> list[int]:
        return [self.http_port] + ([self.admin_port] if self.admin_port else []) + self._ops_ports()

    def operators(self) -> dict[str, OperatorToken]:
        """Every operator token by name, the shared one as `admin` with every scope."""
        legacy = {LEGACY_OPERATOR: OperatorToken(token=self.admin_token, scopes={"*"})} if self.admin_token else {}
        return legacy | self.admin_tokens

    @model_validator(mode="after")
    def refuse_placeholder_operator_tokens(self) -> "AdminApiSettings":
        """A placeholder admin token opens the admin API to anyone who read the example:
        refused in every environment, whether given in clear or by its hash."""
        if self.admin_token is not None:
            refuse_weak_secret("GENLINE_ADMIN_TOKEN", self.admin_token.get_secret_value())
        for name, operator in self.admin_tokens.items():
            if operator.token is not None:
                refuse_weak_secret(f"GENLINE_ADMIN_TOKENS[{name!r}]", operator.token.get_secret_value())
            elif operator.token_sha256 in _PLACEHOLDER_HASHES:
                raise ValueError(f"GENLINE_ADMIN_TOKENS[{name!r}] is the hash of a placeholder")
        return self
