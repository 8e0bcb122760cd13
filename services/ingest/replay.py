"""`genline replay jobs`: rebuild every job's read model from all topics and compare.

Reads every service's topic from the beginning, folds each job's events into its view with
ingest's own `apply_event` (so it follows whatever state the read model grows), compares
the result with ingest's `jobs` table field by field, prints every difference, and exits
non-zero if there is any. Events still on their way make a live view differ for a moment,
so a difference counts only if it is still there after `--settle` seconds.
"""

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from uuid import UUID

import psycopg

from services.common.contracts import PUBLISHERS, JobSpec, topic_of
from services.common.replay import decoded_envelopes, read_topic_to_end, report
from services.common.sealing import ERASED, open_sealed
from services.ingest.data_keys import keys_of
from services.ingest.domain import JobView, replay_views
from services.ingest.settings import IngestSettings


@dataclass(frozen=True)
class Difference:
    job_id: UUID
    field: str
    live: object
    replayed: object


@dataclass(frozen=True)
class History:
    events: int
    records: int
    malformed: int
    views: dict[UUID, JobView]


async def read_history(bootstrap: str, namespace: str, open_prompt) -> History:
    records = [r for publisher in PUBLISHERS for r in await read_topic_to_end(bootstrap, topic_of(publisher, namespace))]
    envelopes, malformed = decoded_envelopes(records)
    views = replay_views([(envelope.time, envelope.event) for envelope in envelopes], open_prompt)
    return History(len(envelopes), len(records), malformed, views)


def prompt_opener(conn: psycopg.Connection, schema: str):
    """Opens each job's sealed prompt with its data key; an erased job's prompt (its key
    gone, or an old event's clear text) reads as erased, as its live view shows it."""
    keys = keys_of(conn, schema)
    erased = {row[0] for row in conn.execute(f'SELECT id FROM "{schema}".jobs WHERE erased_at IS NOT NULL')}

    def open_prompt(spec: JobSpec) -> str:
        return ERASED if spec.job_id in erased else open_sealed(keys.get(spec.job_id), spec.job_id, "prompt", spec.prompt)

    return open_prompt


def live_views(conn: psycopg.Connection, schema: str, tenant: str | None) -> dict[UUID, JobView]:
    rows = conn.execute(f'SELECT id, view, erased_at IS NOT NULL FROM "{schema}".jobs'
                        ' WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s', {"tenant": tenant}).fetchall()
    views = {row[0]: JobView.model_validate(row[1]) for row in rows}
    # Jobs erased before prompts were sealed kept an empty prompt.
    return {job_id: view.model_copy(update={"prompt": ERASED}) if erased else view
            for (job_id, _, erased), view in zip(rows, views.values(), strict=True)}


def compare(live: dict[UUID, JobView], replayed: dict[UUID, JobView]) -> list[Difference]:
    differences = []
    for job_id in sorted(live.keys() | replayed.keys(), key=str):
        mine, theirs = live.get(job_id), replayed.get(job_id)
        if mine is None or theirs is None:
            differences.append(Difference(job_id, "job", mine and mine.state, theirs and theirs.state))
            continue
        # Through JSON, as the live view was stored, so both sides have the same types.
        theirs = JobView.model_validate_json(theirs.stored_json())
        differences += [Difference(job_id, name, getattr(mine, name), getattr(theirs, name))
                        for name in JobView.model_fields if getattr(mine, name) != getattr(theirs, name)]
    return differences


def replay_jobs(settings: IngestSettings, schema: str, tenant: str | None = None, out=print,
                settle_s: float = 30) -> int:
    deadline = time.monotonic() + settle_s
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        while True:
            history = asyncio.run(read_history(settings.kafka_bootstrap, settings.topic_namespace,
                                               prompt_opener(conn, schema)))
            replayed = {j: v for j, v in history.views.items() if tenant is None or v.tenant_id == tenant}
            differences = compare(live_views(conn, schema, tenant), replayed)
            if not differences or time.monotonic() > deadline:
                break
            time.sleep(1)
    out(f"replayed {history.events} events ({history.records} records) from {len(PUBLISHERS)} topics"
        f" into {len(replayed)} jobs")
    lines = [f"job={d.job_id} {d.field}: live={d.live!r} replayed={d.replayed!r}" for d in differences]
    return report(out, history.malformed, lines, len({d.job_id for d in differences}), "job")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genline replay jobs", description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["jobs"])
    parser.add_argument("--schema", default="ingest", help="the live ingest schema to compare with")
    parser.add_argument("--tenant", help="only this tenant's jobs")
    parser.add_argument("--settle", type=float, default=30, help="seconds a difference must last to count")
    args = parser.parse_args(argv)
    return replay_jobs(IngestSettings(), args.schema, args.tenant, settle_s=args.settle)


if __name__ == "__main__":
    sys.exit(main())
