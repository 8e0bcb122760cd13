"""The broker is the transport, PostgreSQL the record: a broker killed mid-flight and started
again empty, and topics rotated while jobs stream through them, lose no job, no event and no
credit, and repeat none; while the broker is away ingest stays ready and takes jobs."""

import time

import httpx
import psycopg
import pytest

from genline_stack.fleet import SERVICES
from services.common.contracts import FINAL_STATES
from services.ingest.jobs.replay import JobReplay, replay_jobs
from services.ingest.settings import IngestSettings
from services.ledger.audit_replay import AuditReplay, replay_audit
from services.ledger.replay import LedgerReplay, replay_ledger
from services.ledger.settings import LedgerSettings
from tests.e2e.conftest import make_tenant
from tests.test_restart import Platform, delivered, sha256_at, wait_until_mid_flight

pytestmark = [pytest.mark.processes, pytest.mark.own_stack]  # starts the platform's processes or the stack's servers again

UNIT_PRICE = 10


def ended_once_and_charged_once(database_url: str, job_ids: list[str]) -> None:
    """Each job entered one final state once (its event log), and was charged once."""
    with psycopg.connect(database_url) as conn:
        endings = dict(conn.execute(
            "SELECT job_id::text, count(*) FROM ingest.job_log WHERE type = 'state' AND payload->>'state' = ANY(%s)"
            " AND job_id::text = ANY(%s) GROUP BY job_id", [list(FINAL_STATES), job_ids]).fetchall())
        charges = dict(conn.execute(
            "SELECT t.job_id::text, count(*) FROM ledger.entries e JOIN ledger.transfers t ON t.id = e.transfer_id"
            " WHERE e.kind = 'charge' AND t.job_id::text = ANY(%s) GROUP BY t.job_id", [job_ids]).fetchall())
    assert endings == dict.fromkeys(job_ids, 1)
    assert charges == dict.fromkeys(job_ids, 1)


def rotations(database_url: str) -> dict[str, int]:
    """How many times each service has rotated its topic."""
    with psycopg.connect(database_url) as conn:
        return {name: conn.execute(f'SELECT coalesce(max(rotations), 0) FROM "{name}".outbox_partitions')
                .fetchone()[0] for name in SERVICES}


def replays_find_no_difference(platform: Platform) -> None:
    lines: list[str] = []
    assert replay_ledger(platform.endpoints.settings(LedgerSettings), LedgerReplay("ledger"), out=lines.append) == 0, lines
    assert replay_jobs(platform.endpoints.operator_settings(IngestSettings), JobReplay(), out=lines.append) == 0, lines
    assert replay_audit(platform.endpoints.operator_settings(LedgerSettings), AuditReplay("ledger"), out=lines.append) == 0, lines


def test_a_broker_killed_mid_flight_and_started_again_empty_loses_nothing(tmp_path):
    platform = Platform(tmp_path / "data")
    try:
        fleet = platform.start()
        tenant = make_tenant(platform.endpoints, fleet, credits=1_000)
        job_ids = [tenant.submit(images=1 + i % 2, candidates=2 + i % 2, seed=i) for i in range(20)]
        wait_until_mid_flight(tenant, job_ids)
        before = delivered(tenant, job_ids)

        platform.stack.servers["broker"].kill()  # SIGKILL: its whole log is gone
        # Without a broker ingest stays ready and takes jobs: they wait in its outbox.
        for name in ("ingest", "ledger"):
            readiness = httpx.get(f"{fleet.url(name)}/readyz", timeout=10)
            assert readiness.status_code == 200 and "broker" in readiness.json()["degraded"], readiness.text
        job_ids += [tenant.submit(images=1, candidates=2, seed=200 + i) for i in range(3)]
        platform.stack.restart_broker()
        job_ids += [tenant.submit(images=1, candidates=2, seed=100 + i) for i in range(5)]

        jobs = tenant.wait_settled(job_ids)
        assert {job["state"] for job in jobs.values()} == {"succeeded"}
        ended_once_and_charged_once(platform.endpoints.database_url, job_ids)
        images = sum(job["images"] for job in jobs.values())
        assert tenant.balance() == {"posted": 1_000 - images * UNIT_PRICE, "pending": 0,
                                    "available": 1_000 - images * UNIT_PRICE}
        after = delivered(tenant, job_ids)
        assert len(after) == images and all(sha256_at(url) == sha for url, sha in after.values())
        assert all(sha256_at(url) == sha for url, sha in before.values())  # links issued before the loss
        replays_find_no_difference(platform)
    finally:
        platform.stop("sigterm")


def test_topics_rotated_while_jobs_stream_through_them_lose_and_repeat_nothing(tmp_path):
    # Small topics, looked at every second: rotations come while the jobs stream through.
    platform = Platform(tmp_path / "data", rotate_after_records=12, fleet_env={"GENLINE_BUS_CHECK_INTERVAL_S": "1"})
    try:
        fleet = platform.start()
        tenant = make_tenant(platform.endpoints, fleet, credits=10_000)
        job_ids = []
        rotated: dict[str, int] = {}
        for wave in range(30):  # a stream: a few jobs every half second
            job_ids += [tenant.submit(images=1, candidates=2, seed=wave * 10 + i) for i in range(3)]
            time.sleep(0.5)
            rotated = rotations(platform.endpoints.database_url)
        jobs = tenant.wait_settled(job_ids)

        assert {job["state"] for job in jobs.values()} == {"succeeded"}
        ended_once_and_charged_once(platform.endpoints.database_url, job_ids)
        assert sum(count > 0 for count in rotated.values()) >= 3, rotated  # while the stream went on
        replays_find_no_difference(platform)
    finally:
        platform.stop("sigterm")
