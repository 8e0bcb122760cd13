from services.common.settings import SealedContentSettings


class ScorerSettings(SealedContentSettings):
    service_name: str = "scorer"
    http_port: int = 8084
    # Without fair turns a batch is scored before the next poll: 64 candidates at worst ~4 s
    # each on one CPU core (every dimension, a large image) is ~4 min, half the poll interval.
    # In fair turns the consumer polls on while its lanes score.
    consumer_batch_size: int = 64
    kafka_max_poll_interval_ms: int = 540_000
    # Candidates decoded and scored at once: what a scorer holds of a job in memory, whatever
    # the job's size (a chunk the router announces, or an attempt's rest, goes in batches).
    scoring_batch_candidates: int = 32
    # The same for a video job's clips: each is a file of megabytes (20 MB for 10 s of 1080p)
    # and keeps its sampled frames decoded (8 of at most 640 pixels a side, 7 MB) between tiers.
    scoring_batch_clips: int = 8
    # A tenant's backlog of candidates waits its turn behind no one's and holds no one behind it.
    consumer_fair_turns: bool = True
    # "cuda" or "cpu"; the CUDA device when present unless set.
    device: str | None = None
    # NudeNet classes that `nsfw` scores; the explicit ones (moderation.MODERATED_BY_DEFAULT) when unset.
    moderated_classes: frozenset[str] | None = None
    # Per-tenant ceiling on nsfw, tenant id to the highest score let through (JSON in
    # GENLINE_NSFW_MAX_BY_TENANT); a job's rules may be stricter than it, never looser.
    nsfw_max_by_tenant: dict[str, float] = {}
    # Images scored in parallel; the CPU count when unset. In a container, set it from the
    # CPU limit (the node's count can be far larger than the cores the pod may use).
    scoring_threads: int | None = None
