"""Nothing lost on restart: 20 jobs in flight, everything stopped (SIGTERM, or SIGKILL to
every process as a power cut would), everything started again on the same data directory.
Every job ends, every delivered link downloads the same bytes, and both replays find the
live state equal to the event log."""

import hashlib
import time

import httpx
import psycopg
import pytest

from genline_stack.embedded import EmbeddedStack
from genline_stack.fleet import ServiceFleet
from services.ingest.jobs.replay import JobReplay, replay_jobs
from services.ingest.settings import IngestSettings
from services.ledger.replay import LedgerReplay, replay_ledger
from services.ledger.settings import LedgerSettings
from tests.e2e.conftest import FINAL, make_tenant

pytestmark = [pytest.mark.processes, pytest.mark.own_stack]  # starts the platform's processes or the stack's servers again

FLEET_ENV = {"GENLINE_ENVIRONMENT": "test", "GENLINE_KAFKA_SESSION_TIMEOUT_MS": "6000"}


class Platform:
    """The embedded stack and the five services on one data directory, started and stopped as a whole."""

    def __init__(self, data_dir, fleet_env: dict[str, str] | None = None, **stack_options) -> None:
        self.data_dir, self.stack, self.fleet = data_dir, None, None
        self.fleet_env, self.stack_options = FLEET_ENV | (fleet_env or {}), stack_options

    def start(self) -> ServiceFleet:
        self.stack = EmbeddedStack(data_dir=self.data_dir, **self.stack_options)
        self.endpoints = self.stack.start()
        self.fleet = ServiceFleet(endpoints=self.endpoints, log_dir=self.data_dir / "logs", extra_env=self.fleet_env)
        self.fleet.start_all()
        return self.fleet

    def stop(self, how: str) -> None:
        if self.fleet is not None:
            if how == "sigkill":
                for name in list(self.fleet.processes):
                    self.fleet.kill(name)
            self.fleet.stop_all()
        if self.stack is not None:
            self.stack.kill() if how == "sigkill" else self.stack.stop()
        self.stack = self.fleet = None


def wait_until_mid_flight(tenant, job_ids: list[str], timeout_s: float = 240) -> None:
    """Until some jobs are delivered and others are not final yet; fails at once when every
    job is final, as none can be mid-flight any more. The states are read from the read
    model in one query: asking for each job over HTTP took long enough on a busy machine
    for the whole batch to end between two looks."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(tenant.endpoints.database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            states = [row[0] for row in conn.execute("SELECT state FROM ingest.jobs WHERE id::text = ANY(%s)",
                                                     [job_ids]).fetchall()]
            if "succeeded" in states and any(s not in FINAL for s in states):
                return
            if len(states) == len(job_ids) and all(s in FINAL for s in states):
                break
            time.sleep(0.02)
    raise AssertionError(f"never mid-flight: {states}")


def delivered(tenant, job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Every delivered output: its link as issued now and its content hash."""
    return {f"{j}/{o['n']}": (o["url"], o["sha256"]) for j in job_ids for o in tenant.job(j)["outputs"]}


def sha256_at(url: str) -> str:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text[:300]
    return hashlib.sha256(response.content).hexdigest()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_nothing_is_lost_when_everything_stops_and_starts_again(tmp_path, how):
    platform = Platform(tmp_path / "data")
    try:
        fleet = platform.start()
        tenant = make_tenant(platform.endpoints, fleet, credits=1_000)
        job_ids = [tenant.submit(images=1 + i % 2, candidates=2 + i % 2, seed=i) for i in range(20)]
        wait_until_mid_flight(tenant, job_ids)
        before = delivered(tenant, job_ids)
        assert {url: sha256_at(url) for url, _ in before.values()} == dict(before.values())

        platform.stop(how)
        fleet = platform.start()
        tenant.http = httpx.Client(base_url=fleet.ingest_url, headers=dict(tenant.http.headers), timeout=10)

        jobs = tenant.wait_settled(job_ids)
        assert {job["state"] for job in jobs.values()} == {"succeeded"}
        for url, sha in before.values():  # links issued before the restart still work
            assert sha256_at(url) == sha
        after = delivered(tenant, job_ids)
        assert before.keys() <= after.keys() and len(after) == sum(job["images"] for job in jobs.values())
        assert all(sha256_at(url) == sha for url, sha in after.values())
        assert {key: sha for key, (_, sha) in after.items() if key in before} == {k: s for k, (_, s) in before.items()}

        lines: list[str] = []
        assert replay_ledger(platform.endpoints.settings(LedgerSettings), LedgerReplay("ledger"), out=lines.append) == 0, lines
        assert replay_jobs(platform.endpoints.operator_settings(IngestSettings), JobReplay(), out=lines.append) == 0, lines
    finally:
        platform.stop("sigterm")
