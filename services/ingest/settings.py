import contextlib
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, field_validator, model_validator

from services.common.http_headers import Network, networks
from services.common.settings import AdminApiSettings, refuse_missing_or_weak
from services.ingest.key_encryption import LocalKeys
from services.ingest.prompt_rules import OperatorRule, Policy
from services.ingest.signing_key import load_signing_key
from services.ingest.team_settings import TeamSettings

CGROUP_MEMORY_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
# Beyond this a cgroup "limit" means none was set (cgroup v1 writes a huge number for that).
NO_LIMIT_ABOVE = 1 << 50


def memory_limit_bytes() -> int | None:
    """The container's memory limit (cgroup v2, then v1), or None where none is set."""
    for path in CGROUP_MEMORY_LIMITS:
        with contextlib.suppress(OSError, ValueError):
            value = int(path.read_text().strip())
            return value if value < NO_LIMIT_ABOVE else None
    return None


class IngestSettings(AdminApiSettings, TeamSettings):
    service_name: str = "ingest"
    http_port: int = 8081
    max_images: int = 16
    max_candidates: int = 64
    # Without an explicit N, generate this many candidates per requested image (rounded up).
    default_oversample: float = 1.5
    link_ttl_s: int = 3600
    # Input photos (uploads and base64 reference photos) larger than this many pixels are
    # refused from their declared size, before decoding (decompression bombs too), and
    # uploads larger than this many bytes from their Content-Length or while reading.
    max_reference_pixels: int = 40_000_000
    max_upload_bytes: int = 8 * 1024 * 1024
    # Screening decodes at most this much memory at once (services/ingest/inputs/screening.py): by
    # default this share of the pod's memory limit (cgroup), or 512 MiB where none is set;
    # an image that cannot be decoded within it is refused, one that must wait longer than
    # `screening_wait_s` for room is asked to come back (503).
    screening_memory_bytes: int | None = None
    screening_memory_share: float = 0.4
    screening_threads: int = 2
    screening_wait_s: float = 3.0

    def screening_budget_bytes(self) -> int:
        if self.screening_memory_bytes is not None:
            return self.screening_memory_bytes
        limit = memory_limit_bytes()
        return int(limit * self.screening_memory_share) if limit else 512 * 1024 * 1024
    # The documentation site `/docs/` serves: built into this folder (`make docs`), or published
    # at `docs_url`, where `/docs/` then sends (the API's root and the console link to /docs/).
    docs_dir: Path = Path("site")
    docs_url: str | None = None
    # The scorer's internal API, which measures an input photo against its template's checks.
    scorer_url: str = "http://127.0.0.1:8084"
    scorer_timeout_s: float = 30.0
    ledger_grpc_target: str = "127.0.0.1:50051"
    ledger_grpc_timeout_s: float = 3.0
    # The router's internal gRPC API: providers' breakers, prices and load, for the operator view.
    router_grpc_target: str = "127.0.0.1:50052"
    router_grpc_timeout_s: float = 5.0
    # Delivery's internal API, which keeps the webhook endpoints and attempts.
    delivery_url: str = "http://127.0.0.1:8085"
    delivery_timeout_s: float = 5.0
    # The ledger's internal billing API (checkouts, auto top-up), which calls the payment
    # processor: its answers can take seconds.
    ledger_url: str = "http://127.0.0.1:8082"
    ledger_timeout_s: float = 20.0
    # Prompts are screened at submission, before any hold: the operator's rules (JSON, e.g.
    # [{"category": "weapons", "terms": ["rifle"], "patterns": ["\\bguns?\\b"]}]), each tenant's
    # own, then an OpenAI-style moderation endpoint when `moderation_url` is set, behind a
    # breaker; while it is down a tenant's jobs follow its policy, else `prompt_screening_policy`.
    prompt_rules: list[OperatorRule] = []
    prompt_screening_policy: Policy = "fail_open"
    moderation_url: str | None = None
    moderation_api_key: SecretStr | None = None
    moderation_model: str = "omni-moderation-latest"
    moderation_timeout_s: float = 3.0
    moderation_breaker_failures: int = 3
    moderation_breaker_cooldown_s: float = 30.0
    # Networks webhook URLs may name although they are not public (delivery has the same setting).
    webhook_allowed_networks: list[str] = []
    # Networks an image named by URL (an evaluation's) may be fetched from although they are not
    # public: this purpose's own, whatever webhooks may reach.
    image_url_allowed_networks: list[str] = []
    # Redirects an image URL's fetch follows, each hop checked as the first.
    image_url_redirects: int = 3
    # A retried POST /v1/jobs with the same Idempotency-Key returns the first job for this long.
    idempotency_key_ttl_s: int = 24 * 3600
    # A job's deadline when it names none (no deadline_s, no Cancel-After header), by tier.
    tier_deadline_s: dict[str, int] = {"fast": 600, "stable": 3600, "low-cost": 4 * 3600}
    # The sweeper: how often it looks, how many jobs a round, how long a job may stay in
    # each non-final state, how long after its own deadline the pipeline gets to end it
    # (a partial delivery), and how long delivery gets to answer before the job is ended here.
    sweep_interval_s: float = 10.0
    sweep_batch_size: int = 200
    state_deadline_s: dict[str, float] = {"submitted": 600, "admitted": 1800, "generating": 3600,
                                          "scoring": 1800, "delivering": 900}
    deadline_grace_s: float = 120.0
    cancel_answer_timeout_s: float = 120.0
    # Subjects (POST /v1/subjects): erased this many days after their last order (or their
    # creation) unless the tenant keeps them or an operator sets the tenant's own retention;
    # the sweeper looks every `subject_sweep_interval_s`, at most `subject_sweep_batch` a round.
    subject_retention_days: int = 30
    subject_sweep_interval_s: float = 60.0
    subject_sweep_batch: int = 100
    # Photos of a subject screened side by side (the scorer measures each).
    subject_screening_concurrency: int = 2
    # Plans (rates, concurrent jobs, images a day, priority); the packaged plans.yaml when unset.
    plans_path: str | None = None
    # A rotated API key keeps working this long, so clients can switch over, unless the
    # rotation names its own overlap (up to the maximum).
    key_rotation_overlap_s: int = 24 * 3600
    max_key_rotation_overlap_s: int = 30 * 24 * 3600
    # False: this replica serves the API and its streams only, and leaves applying the job
    # events to the replicas that consume them (a stream shows what any replica applied).
    consume_events: bool = True
    # SSE streams: a keep-alive comment this often, so proxies keep an idle stream open; and
    # a look at the log this often even when no commit was notified (a lost notification).
    stream_keepalive_s: float = 15.0
    stream_poll_s: float = 5.0
    # Receipts are signed with this Ed25519 key (base64url of its 32-byte seed, or PKCS#8 PEM;
    # `genline receipts keygen` makes one), required in production. Rotating it is setting
    # another: the public keys of earlier ones stay published. Unset in development and
    # tests, each process signs with a key of its own, published like any other.
    receipt_signing_key: SecretStr | None = None
    # The key-encryption key every job's data key is stored wrapped under
    # (services/ingest/key_encryption.py), one of them required in production: a key file
    # (JSON, `genline data-keys new-kek FILE` makes or extends one) mounted from a Secret
    # only ingest reads, or an AWS KMS key (id, ARN or alias), which wraps new keys when set.
    data_key_kek_file: str | None = None
    data_key_kms_key_id: str | None = None
    data_key_kms_endpoint_url: str | None = None
    # Content Credentials: the trust anchors (PEM, in the setting or a file) that delivered
    # images' signing certificates chain to, published at /.well-known/genline-c2pa-anchors.pem
    # and used by POST /v1/verify. Unset, verify still reads manifests (Valid, not Trusted).
    provenance_trust_anchors: str | None = None
    provenance_trust_anchors_file: str | None = None
    # POST /v1/verify takes files up to this size, from anyone, at this rate per address.
    verify_max_bytes: int = 50 * 1024 * 1024
    verify_requests_per_s: float = 1.0
    verify_burst: int = 20
    # C2PA's soft-binding resolution (/matches/byBinding, /manifests/...) answers anyone at this
    # rate per address, counted apart from verify's: a lookup is a query, not a file to read.
    soft_binding_requests_per_s: float = 5.0
    soft_binding_burst: int = 60
    # The proxies in front of ingest (an ingress, a load balancer), as addresses or CIDR blocks:
    # for a request they pass on, the client's address is read from the header they write
    # (`forwarded_header`: X-Forwarded-For, or RFC 7239's Forwarded), from the right, past
    # them; for any other peer, and with none named, the connection's own address counts.
    trusted_proxies: list[str] = []
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"

    @field_validator("trusted_proxies")
    @classmethod
    def proxies_are_networks(cls, named: list[str]) -> list[str]:
        networks(named)  # ValueError names the entry that is neither an address nor a CIDR block
        return named

    def proxy_networks(self) -> tuple[Network, ...]:
        return networks(self.trusted_proxies)

    # The OpenAI-compatible API: how long a call waits for its job before answering 504 with
    # the job's id, and the model aliases it maps onto templates (compat/models.yaml when unset).
    openai_wait_s: float = 300.0
    openai_models_path: str | None = None
    # Batches: an input file's bounds (bytes, lines, bytes a line), the chunks it is stored in,
    # the jobs of one batch in flight at once (at most half the plan's jobs in progress), how
    # often the runner looks for work while it finds some, and at most while it finds none (a
    # batch made or cancelled here wakes it, one waiting for its jobs is looked at when due),
    # and how long it holds a batch it works on.
    batch_file_max_bytes: int = 100 * 1024 * 1024
    batch_max_lines: int = 50_000
    batch_line_max_bytes: int = 1024 * 1024
    batch_chunk_bytes: int = 1024 * 1024
    batch_window: int = 32
    batch_interval_s: float = 0.25
    batch_idle_interval_s: float = 5.0
    batch_lease_s: float = 60.0
    # Evaluations: how long fetching an image by URL may take, how often the runner looks for
    # evaluation batches (and webhooks to send) while it finds some and at most while it finds
    # none (as the batch runner), the images it judges at a time, and how often a batch's
    # webhook is tried before it is given up.
    evaluation_fetch_timeout_s: float = 10.0
    evaluation_interval_s: float = 0.5
    evaluation_idle_interval_s: float = 5.0
    evaluation_window: int = 8
    evaluation_webhook_attempts: int = 5

    def trust_anchors(self) -> str | None:
        if self.provenance_trust_anchors_file:
            return Path(self.provenance_trust_anchors_file).read_text()
        return self.provenance_trust_anchors

    @model_validator(mode="after")
    def signing_key(self) -> "IngestSettings":
        production = self.environment == "production"
        refuse_missing_or_weak("GENLINE_RECEIPT_SIGNING_KEY", self.receipt_signing_key, required=production)
        if self.receipt_signing_key is not None:
            load_signing_key(self.receipt_signing_key.get_secret_value())  # InvalidSigningKey names what is wrong
        if production and not (self.data_key_kek_file or self.data_key_kms_key_id):
            raise ValueError("GENLINE_DATA_KEY_KEK_FILE or GENLINE_DATA_KEY_KMS_KEY_ID must be set in production:"
                             " jobs' data keys are stored wrapped under it")
        if self.data_key_kek_file:
            LocalKeys.read(Path(self.data_key_kek_file))  # names what is wrong with the file
        return self
