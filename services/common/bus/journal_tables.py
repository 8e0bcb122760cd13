"""The journal's own tables, and the statements that read and write them: `outbox_partitions`
(what the service knows of each partition it publishes to, and what that and the readers'
offsets say) and `journal_floor` (the floor below which nothing is published again, and the
checkpoint it rises to), and the schema they live in (ServiceSchema). journal.py says what
they are for."""

from dataclasses import dataclass, fields

from services.common.db import Conn, Pool, as_arrays
from services.common.settings import ServiceSettings


@dataclass(frozen=True, kw_only=True)
class ServiceSchema:
    """Where a service keeps its outbox, inbox and journal: its schema (`name`), reached through
    its pool, or through `database_url` for what holds a connection of its own (a listener, the
    bus fence); and the settings it runs under."""

    name: str
    pool: Pool
    database_url: str
    settings: ServiceSettings


@dataclass(kw_only=True)
class Partition:
    """One row of `outbox_partitions`."""

    topic: str
    partition: int
    broker: str | None = None
    log_start: int = 0
    acked_through: int | None = None
    log_end: int | None = None
    consumed_through: int | None = None
    rotate_to: int | None = None
    rotations: int = 0

    def reach(self) -> int:
        """The furthest offset this service knows the partition to have reached."""
        acked = -1 if self.acked_through is None else self.acked_through
        return max(acked + 1, self.log_end or 0, self.log_start)


# The start of the oldest transaction running in this database now (its rows, once
# committed, carry it as their creation time); the clock when none is.
OLDEST_TRANSACTION = (
    "SELECT coalesce(min(xact_start), clock_timestamp()) AS at FROM pg_stat_activity"
    " WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    " AND xact_start IS NOT NULL")
# One statement, so one snapshot: no unpublished row created before the checkpoint's time,
# and each partition's highest acknowledged offset, as of the same moment.
TAKE_CHECKPOINT = (
    "WITH marked AS (UPDATE outbox_partitions SET checkpoint = acked_through RETURNING 1)"
    " UPDATE journal_floor SET checkpoint_at = least(%(running)s, now() - make_interval(secs => %(margin)s),"
    "  (SELECT min(created_at) FROM outbox WHERE published_at IS NULL))")  # WITH runs whether read or not
# Every reader group has read past the checkpoint's offsets (a partition no group is known
# to have read holds it back): the floor rises to its time, or to the republish window.
RAISE_FLOOR = (
    "UPDATE journal_floor SET floor = greatest(floor, least(checkpoint_at, now() - make_interval(secs => %(window)s))),"
    " checkpoint_at = NULL WHERE checkpoint_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM outbox_partitions p"
    " WHERE p.checkpoint IS NOT NULL AND (p.consumed_through IS NULL OR p.consumed_through <= p.checkpoint))")
NOT_BELOW_FLOOR = "o.created_at >= coalesce((SELECT floor FROM journal_floor), '-infinity')"

# The oldest rows of a batch that are published, past the retention window and read by every
# reader group, deleted; the horizon notes, per topic, the newest creation time that went.
PRUNE_PUBLISHED = (
    "WITH oldest AS (SELECT seq FROM outbox ORDER BY seq LIMIT %(batch)s),"
    " gone AS (DELETE FROM outbox o USING oldest WHERE o.seq = oldest.seq"
    "  AND o.published_at < now() - make_interval(secs => %(retention)s)"
    "  AND (o.partition IS NULL OR EXISTS (SELECT 1 FROM outbox_partitions p WHERE p.topic = o.topic"
    "   AND p.partition = o.partition AND o.\"offset\" < p.consumed_through))"
    "  RETURNING o.topic, o.created_at),"
    " horizon AS (INSERT INTO outbox_horizon (topic, pruned_before)"
    "  SELECT topic, max(created_at) FROM gone GROUP BY topic ON CONFLICT (topic) DO UPDATE"
    "  SET pruned_before = greatest(outbox_horizon.pruned_before, excluded.pruned_before))"
    " SELECT count(*) AS n FROM gone")

COLUMNS = tuple(f.name for f in fields(Partition))
COLUMN_TYPES = ("text", "int", "text", "bigint", "bigint", "bigint", "bigint", "bigint", "int")
KEEP_READ = "consumed_through = greatest(outbox_partitions.consumed_through, excluded.consumed_through)"


async def read_partitions(conn: Conn, topic: str | None = None) -> dict[tuple[str, int], Partition]:
    rows = await (await conn.execute(f"SELECT {', '.join(COLUMNS)} FROM outbox_partitions"
                                     " WHERE %(topic)s::text IS NULL OR topic = %(topic)s", {"topic": topic})).fetchall()
    return {(r["topic"], r["partition"]): Partition(**r) for r in rows}


async def write_partitions(conn: Conn, rows: list[Partition], *on_conflict: str) -> None:
    """Insert these rows; where one exists, apply `on_conflict` (`excluded` is the new row)."""
    if not rows:
        return
    await conn.execute(
        f"INSERT INTO outbox_partitions ({', '.join(COLUMNS)})"
        f" SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in COLUMN_TYPES)})"
        f" ON CONFLICT (topic, partition) DO UPDATE SET {', '.join(on_conflict)}",
        as_arrays([tuple(getattr(row, c) for c in COLUMNS) for row in rows]))


def ends_below(acked: dict[tuple[str, int], Partition], ends: dict[int, int]) -> bool:
    """A partition ends at or below an offset the broker acknowledged: its log was lost."""
    return any(row.acked_through is not None and ends.get(p, 0) <= row.acked_through for (_, p), row in acked.items())


def read_by_all(partition: int, committed: dict[str, dict[int, int]]) -> int | None:
    """The offset every reader has committed on `partition`; None while one has not."""
    offsets = [by_partition[partition] for by_partition in committed.values() if partition in by_partition]
    return min(offsets) if offsets and len(offsets) == len(committed) else None


def lag(starts: dict[int, int], ends: dict[int, int], *, committed: dict[str, dict[int, int]]) -> int:
    """The most records a reader group has yet to read on a partition, each partition's log
    from its start to its end (a group that committed nothing there since the log began has
    all of them to read)."""
    return max((end - max(starts[partition], by_partition.get(partition, starts[partition]))
                for partition, end in ends.items() for by_partition in committed.values()), default=0)
