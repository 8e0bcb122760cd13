"""The scorer's tables: `scored_jobs` (one row per job: attempts seen, the outcome once
decided) and `scores` (one row per candidate, the selected ones marked). Every SQL
statement of the scorer is here; handlers call these with the connection they hold."""

import json
from typing import Any
from uuid import UUID

from services.common.bus import InboxClaim
from services.common.contracts import CandidateScore, CandidatesScored, RegenerationRequested, ScoringFailed
from services.common.db import Conn, Statement, as_arrays, together, typed_arrays
from services.scorer.domain import ChunkScores, Passing, ScoredSoFar


async def lock_job(conn: Conn, job_id: UUID, *, attempt: int, claim: InboxClaim) -> str | None:
    """Claim the event on the inbox (`claim`, told what is fresh) and take the job's row for
    this transaction, in one statement; the outcome already published, if any."""
    row = await (await conn.execute(*claim.first(
        "INSERT INTO scored_jobs (job_id, attempts) VALUES (%s, %s) ON CONFLICT (job_id)"
        " DO UPDATE SET attempts = GREATEST(scored_jobs.attempts, EXCLUDED.attempts)"
        " RETURNING outcome, (SELECT ids FROM claimed_ids) AS claimed",
        [job_id, attempt],
    ))).fetchone()
    assert row is not None, "an upsert with RETURNING returns its row"
    claim.fresh(row["claimed"])
    outcome: str | None = row["outcome"]
    return outcome


Outcome = CandidatesScored | RegenerationRequested | ScoringFailed  # what scoring an attempt decides

SCORE_COLUMNS = {"job_id": "uuid", "attempt": "int", "index": "int", "key": "text", "provider": "text",
                 "passed": "bool", "score": "float8", "dimensions": "jsonb", "selected": "bool", "candidate": "jsonb",
                 "style": "text", "fingerprint": "text"}


async def store_scores(conn: Conn, job_id: UUID, *, scores: list[CandidateScore]) -> list[CandidateScore]:
    """The attempt's scores stored (a candidate scored before keeps its row) and every score
    of the job read back, in index order, in one statement: the rows this statement adds
    come from its RETURNING, those of earlier attempts from the table (a statement does not
    see its own writes; the job's row lock keeps any other writer out)."""
    rows = _score_rows(job_id, scores)
    added = inserted(rows, {"index": "int", "candidate": "jsonb"})
    found = await (await conn.execute(
        f"WITH added AS ({added})"
        " SELECT candidate FROM (SELECT index, candidate FROM scores WHERE job_id = %s::uuid AND candidate IS NOT NULL"
        "  UNION ALL SELECT index, candidate FROM added) AS job_scores ORDER BY index",
        [*as_arrays(rows), str(job_id)])).fetchall()
    return [CandidateScore.model_validate(row["candidate"]) for row in found]


async def scoring_so_far(conn: Conn, job_id: UUID) -> ScoredSoFar | None:
    """The job's candidates scored so far, and those that pass (with their style and
    fingerprint, for the selection), every attempt and chunk counted; None when the job's
    outcome is published already. One statement, no lock taken: a row for each score, each
    with the outcome (one row of no score where there is none)."""
    rows = await (await conn.execute(
        "SELECT (SELECT outcome FROM scored_jobs WHERE job_id = %(job)s) AS outcome, s.index, s.passed, s.score,"
        " s.style, s.fingerprint FROM (SELECT) AS one LEFT JOIN scores AS s ON s.job_id = %(job)s",
        {"job": job_id})).fetchall()
    if rows[0]["outcome"]:
        return None
    scored = [row for row in rows if row["index"] is not None]
    return ScoredSoFar(frozenset(row["index"] for row in scored),
                       tuple(Passing(index=row["index"], score=row["score"], style=row["style"], fingerprint=row["fingerprint"])
                             for row in scored if row["passed"]))


def inserted(rows: list[tuple[Any, ...]], returning: dict[str, str]) -> str:
    """The statement, for a WITH, that inserts `rows` (an index scored before keeps its row)
    and returns the columns of `returning` (name: type); with no rows, one that returns none
    of that shape (unnest over no arrays has no statement to run)."""
    if not rows:
        return "SELECT " + ", ".join(f"NULL::{kind} AS {name}" for name, kind in returning.items()) + " WHERE false"
    return (f"INSERT INTO scores ({', '.join(SCORE_COLUMNS)}) SELECT * FROM unnest({typed_arrays(SCORE_COLUMNS)})"
            f" ON CONFLICT (job_id, index) DO NOTHING RETURNING {', '.join(returning)}")


def _score_rows(job_id: UUID, scores: list[CandidateScore]) -> list[tuple[Any, ...]]:
    dumped = [s.model_dump(mode="json") for s in scores]
    return [(str(job_id), s.attempt, s.index, s.key, s.provider, s.passed, s.score, json.dumps(d["dimensions"]),
             False, json.dumps(d), s.style, s.fingerprint) for s, d in zip(scores, dumped, strict=True)]


async def add_chunk_scores(conn: Conn, job_id: UUID, *, scores: list[CandidateScore]) -> ChunkScores:
    """A chunk's scores stored (an index scored before keeps its row), in one statement: the
    scores it added, and how many candidates of the job are scored and pass, these included.
    A chunk with nothing new (a run taken over announced what was scored) only counts."""
    rows = _score_rows(job_id, scores)
    added = inserted(rows, {"index": "int", "passed": "bool", "candidate": "jsonb"})
    row = await (await conn.execute(
        f"WITH added AS ({added}),"
        " before AS (SELECT count(*) AS scored, count(*) FILTER (WHERE passed) AS passing"
        "  FROM scores WHERE job_id = %s::uuid)"
        " SELECT before.scored + (SELECT count(*) FROM added) AS scored,"
        "  before.passing + (SELECT count(*) FROM added WHERE passed) AS passing,"
        "  (SELECT coalesce(jsonb_agg(candidate ORDER BY index), '[]'::jsonb) FROM added) AS added FROM before",
        [*as_arrays(rows), str(job_id)])).fetchone()
    assert row is not None, "an aggregate over one row returns one row"
    return ChunkScores([CandidateScore.model_validate(c) for c in row["added"]], row["scored"], row["passing"])


async def record_outcome(conn: Conn, job_id: UUID, *, outcome: Outcome, announced: Statement | None = None) -> None:
    """The job's outcome and its selected candidates (a regeneration decides nothing yet),
    written with `announced` (HandlerContext.emitting's) in one statement."""
    writes = [announced]
    if not isinstance(outcome, RegenerationRequested):
        writes.append(("UPDATE scored_jobs SET outcome = %s, decided_at = now() WHERE job_id = %s",
                       [outcome.event_type, job_id]))
    if isinstance(outcome, CandidatesScored):
        writes.append(("UPDATE scores SET selected = true WHERE job_id = %s AND index = ANY(%s)",
                       [job_id, outcome.selected]))
    await together(conn, writes)


async def decide_canceled(conn: Conn, job_id: UUID, *, outcome: str) -> None:
    """A canceled job's outcome, unless one was decided before."""
    await conn.execute(
        "INSERT INTO scored_jobs (job_id, outcome, decided_at) VALUES (%s, %s, now()) ON CONFLICT (job_id)"
        " DO UPDATE SET outcome = COALESCE(scored_jobs.outcome, EXCLUDED.outcome),"
        " decided_at = COALESCE(scored_jobs.decided_at, EXCLUDED.decided_at)",
        [job_id, outcome])
