"""`genline replay jobs`: rebuild every job's read model from every service's events and compare.

Reads the five services' events, from their journals by default (their outboxes), or from
their topics from the beginning (`--source topics`); folds each job's events into its view
with ingest's own `apply_event` (so it follows whatever state the read model grows), compares
the result with ingest's `jobs` table field by field, prints every difference, and exits
non-zero if there is any. Events still on their way make a live view differ for a moment,
so a difference counts only if it is still there after `--settle` seconds. A journal pruned
after its retention window no longer holds the whole history of older jobs: those submitted
before its horizon are counted and left out.

The auditor runs it under its own identity (AuditorSettings: a role that reads and writes
nothing). Prompts are sealed under each job's data key, in the events as in the read model
(which keeps no prompt in clear): the replay compares each job's sealed prompt as both hold
it, and with the key-encryption key also opens the events' to rebuild the views; without it,
it leaves the opened prompt out and says so.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg

from services.common.bus import (
    Differences,
    decoded_envelopes,
    journal_horizon,
    journal_schema,
    read_history,
    report,
    until_settled,
)
from services.common.contracts import PUBLISHERS, JobSpec
from services.common.sealing import ERASED, JobField, open_sealed
from services.common.settings import AuditorSettings
from services.ingest.data_keys import keys_of
from services.ingest.jobs import store
from services.ingest.jobs.domain import JobView, replay_views
from services.ingest.key_encryption import Keyring, keyring_of
from services.ingest.settings import IngestSettings

# The fields of a job's view that are sealed under its data key.
SEALED_FIELDS = frozenset({"prompt"})
NOT_OPENED = "<sealed: not opened without the key-encryption key>"


@dataclass(frozen=True, kw_only=True)
class Difference:
    job_id: UUID
    field: str
    live: object
    replayed: object


@dataclass(frozen=True, kw_only=True)
class History:
    events: int
    records: int
    malformed: int
    views: dict[UUID, JobView]


def opens_sealed_fields(settings: IngestSettings | AuditorSettings) -> bool:
    """Ingest's own settings always open them; an auditor's only with the key-encryption key."""
    return not isinstance(settings, AuditorSettings) or settings.opens_sealed_contents()


def history(conn: psycopg.Connection, settings: IngestSettings | AuditorSettings, *, schema: str, source: str) -> History:
    schemas = {publisher: journal_schema(publisher, schema, service="ingest") or publisher for publisher in PUBLISHERS}
    records = read_history(conn, source, settings=settings, schemas=schemas)
    envelopes, malformed = decoded_envelopes(records)
    opener = prompt_opener(conn, schema, keyring=keyring_of(settings)) if opens_sealed_fields(settings) else leave_sealed
    views = replay_views([(envelope.time, envelope.event) for envelope in envelopes], opener)
    return History(events=len(envelopes), records=len(records), malformed=malformed, views=views)


def leave_sealed(spec: JobSpec) -> str:
    return NOT_OPENED


def prompt_opener(conn: psycopg.Connection, schema: str, *, keyring: Keyring) -> Callable[[JobSpec], str]:
    """Opens each job's sealed prompt with its data key; an erased job's prompt (its key
    gone, or an old event's clear text) reads as erased, as its live view shows it."""
    keys = keys_of(conn, schema, keyring=keyring)
    erased = store.erased_job_ids(conn, schema)

    def open_prompt(spec: JobSpec) -> str:
        prompt = JobField(spec.job_id, "prompt")
        return ERASED if spec.job_id in erased else open_sealed(keys.get(spec.job_id), prompt, sealed=spec.prompt)

    return open_prompt


def live_views(conn: psycopg.Connection, schema: str, *, tenant: str | None) -> dict[UUID, JobView]:
    rows = store.stored_views(conn, schema, tenant=tenant)
    views = {row[0]: JobView.model_validate(row[1]) for row in rows}
    # Jobs erased before prompts were sealed kept an empty prompt.
    return {job_id: view.model_copy(update={"prompt": ERASED}) if erased else view
            for (job_id, _, erased), view in zip(rows, views.values(), strict=True)}


def compare(live: dict[UUID, JobView], replayed: dict[UUID, JobView],
            *, left_out: frozenset[str] = frozenset()) -> list[Difference]:
    """Every field of every job that differs, but those `left_out`."""
    fields = [name for name in JobView.model_fields if name not in left_out]
    differences = []
    for job_id in sorted(live.keys() | replayed.keys(), key=str):
        mine, theirs = live.get(job_id), replayed.get(job_id)
        if mine is None or theirs is None:
            differences.append(Difference(job_id=job_id, field="job", live=mine and mine.state, replayed=theirs and theirs.state))
            continue
        # Through JSON, as the live view was stored, so both sides have the same types.
        theirs = JobView.model_validate_json(theirs.stored_json())
        differences += [Difference(job_id=job_id, field=name, live=getattr(mine, name), replayed=getattr(theirs, name))
                        for name in fields if getattr(mine, name) != getattr(theirs, name)]
    return differences


@dataclass(frozen=True, kw_only=True)
class JobReplay:
    """What a replay of the jobs compares: the live schema's jobs (one tenant's, or every
    one's) with the jobs rebuilt from the services' journals or their topics (`source`), a
    difference counting once it has lasted `settle_s`."""

    schema: str = "ingest"
    tenant: str | None = None
    settle_s: float = 30
    source: str = "journal"


def replay_jobs(settings: IngestSettings | AuditorSettings, replay: JobReplay,
                *, out: Callable[[str], object] = print) -> int:
    schema, tenant, source = replay.schema, replay.tenant, replay.source
    left_out = frozenset() if opens_sealed_fields(settings) else SEALED_FIELDS
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        horizon: datetime | None = None
        if source == "journal":
            horizon = journal_horizon(conn, [journal_schema(p, schema, service="ingest") or p for p in PUBLISHERS])

        def look() -> tuple[list[Difference], tuple[History, dict[UUID, JobView], set[UUID]]]:
            replayed_history = history(conn, settings, schema=schema, source=source)
            replayed = {j: v for j, v in replayed_history.views.items() if tenant is None or v.tenant_id == tenant}
            live = live_views(conn, schema, tenant=tenant)
            older = {j for j, v in live.items() if horizon is not None and v.created_at < horizon}
            return compare({j: v for j, v in live.items() if j not in older},
                           {j: v for j, v in replayed.items() if j not in older}, left_out=left_out), \
                (replayed_history, replayed, older)

        differences, (replayed_history, replayed, older) = until_settled(replay.settle_s, look)
    out(f"replayed {replayed_history.events} events ({replayed_history.records} records) from"
        f" {len(PUBLISHERS)} {'journals' if source == 'journal' else 'topics'} into {len(replayed)} jobs")
    if left_out:
        out(f"not compared: {', '.join(sorted(left_out))} (sealed; no key-encryption key was given)")
    if older and horizon is not None:
        out(f"{len(older)} job(s) submitted before the journals' horizon ({horizon.isoformat()}) not compared")
    lines = [f"job={d.job_id} {d.field}: live={d.live!r} replayed={d.replayed!r}" for d in differences]
    return report(out, Differences(lines=lines, differing=len({d.job_id for d in differences}), noun="job", malformed=replayed_history.malformed))
