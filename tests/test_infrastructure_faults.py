"""Every job ends through infrastructure faults too: jobs stream in (one of them an order of 60
images from 240 candidates) while PostgreSQL, the broker and every service are killed with
SIGKILL, one after another, and started again
(PostgreSQL on its data, recovering from its WAL; the broker empty). Every job ends (those
submitted through the faults while the stream still runs), none is lost or charged twice, no
event goes to a dead-letter topic, both replays find the live state equal to the record, and
readiness follows the database down and up.

`GENLINE_CHAOS_ROUNDS` (default 1) repeats the round of faults and `GENLINE_CHAOS_RATE`
(jobs a second, default 1.5) sets the stream, for a longer run than the suite's."""

import contextlib
import os
import signal
import threading
import time
import uuid
from collections import Counter

import httpx
import psycopg
import pytest

from genline_stack.fleet import SERVICES
from services.common.contracts import FINAL_STATES
from tests.e2e.conftest import make_tenant
from tests.polling import until
from tests.test_broker_loss import replays_find_no_difference
from tests.test_restart import Platform

pytestmark = [pytest.mark.processes, pytest.mark.own_stack]  # starts the platform's processes and kills the stack's servers

UNIT_PRICE = 10
ROUNDS = int(os.environ.get("GENLINE_CHAOS_ROUNDS", "1"))
RATE = float(os.environ.get("GENLINE_CHAOS_RATE", "1.5"))
# One round: every service once, PostgreSQL three times, the broker twice, interleaved.
ROUND = ["postgres", "router", "broker", "scorer", "postgres", "ledger", "delivery", "broker", "postgres", "ingest"]
FAULT_GAP_S = 3.0  # between the end of one fault (all back up) and the next
# Among the stream's small jobs, an order at the seed's size: generated, stored and scored in
# chunks while the faults come.
BIG_ORDER_AT, BIG_ORDER = 2, {"images": 60, "candidates": 240}


class Stream:
    """Submits jobs at a steady rate until told to stop; a submission the platform cannot
    take right now (ingest killed, its database away) is sent again with the same
    Idempotency-Key, as a client would, so it counts once."""

    def __init__(self, api: str, key: str) -> None:
        self.http = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        self.job_ids: list[str] = []
        self.refused: Counter = Counter()  # what a try got instead of 202
        self.stop = threading.Event()
        self.error: BaseException | None = None  # what ended the stream early (a 500, say)
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                self.job_ids.append(self._submit(len(self.job_ids)))
                time.sleep(max(0.0, 1 / RATE - (time.monotonic() - started)))
        except BaseException as exc:
            self.error = exc

    def _submit(self, i: int) -> str:
        body = {"prompt": f"a lighthouse in a storm, study {i}", "images": 1 + i % 2, "candidates": 2 + i % 2,
                "seed": i} | (BIG_ORDER if i == BIG_ORDER_AT else {})
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        deadline = time.monotonic() + 120
        while True:
            try:
                response = self.http.post("/v1/jobs", json=body, headers=headers)
                if response.status_code == 202:
                    return response.json()["id"]
                assert response.status_code in (429, 503), response.text  # never a 500
                self.refused[response.status_code] += 1
            except httpx.TransportError as exc:
                self.refused[type(exc).__name__] += 1
            assert time.monotonic() < deadline, f"job {i} not accepted in 120 s: {self.refused}"
            time.sleep(0.5)


def readiness(fleet, name: str) -> int | None:
    try:
        return httpx.get(f"{fleet.url(name)}/readyz", timeout=3).status_code
    except httpx.TransportError:
        return None


def kill_postgres(platform: Platform, unready_seen: list[int | None]) -> None:
    platform.stack.kill_postgres()
    time.sleep(1.0)  # down for a moment, as a crash is before its restart
    unready_seen.append(readiness(platform.fleet, "ingest"))
    platform.stack.restart_postgres()

    def unready() -> list[str]:
        return [name for name in SERVICES if readiness(platform.fleet, name) != 200]

    try:
        until(lambda: not unready(), 30, "not yet")
    except AssertionError:  # a service slow to follow: what its threads are doing, while it is
        print_stacks(platform.fleet, unready())
    until(lambda: not unready(), 90, "a service did not become ready again after PostgreSQL came back")


def signal_service(fleet, name: str, signum: int) -> None:
    """`signum` to the service's process, if it runs (docs/runbooks.md says what each does)."""
    with contextlib.suppress(KeyError, ProcessLookupError):
        os.kill(fleet.processes[name].pid, signum)


def print_stacks(fleet, names: list[str]) -> None:
    """Every thread's Python stack of these services, from their logs (SIGUSR2: docs/runbooks.md),
    printed for the test's report: a service whose event loop is stuck in a call shows the call."""
    for name in names:
        log = fleet.log_dir / f"{name}.log"
        start = log.stat().st_size
        signal_service(fleet, name, signal.SIGUSR2)
        time.sleep(1.0)
        print(f"{name} not ready 30 s after PostgreSQL came back; its threads:\n"
              + log.read_bytes()[start:start + 8000].decode(errors="replace"))


def kill(platform: Platform, what: str, unready_seen: list[int | None]) -> None:
    if what == "postgres":
        kill_postgres(platform, unready_seen)
    elif what == "broker":
        platform.stack.servers["broker"].kill()  # its whole log is gone
        platform.stack.restart_broker()
    else:
        platform.fleet.kill(what)
        platform.fleet.restart(what)


def dead_letters(log_dir) -> list[str]:
    return [line for path in log_dir.glob("*.log") for line in path.read_text(errors="replace").splitlines()
            if "to the DLQ" in line]


def charges_per_job(database_url: str, job_ids: list[str]) -> Counter:
    with psycopg.connect(database_url) as conn:
        return Counter(dict(conn.execute(
            "SELECT t.job_id::text, count(*) FROM ledger.entries e JOIN ledger.transfers t ON t.id = e.transfer_id"
            " WHERE e.kind = 'charge' AND t.job_id::text = ANY(%s) GROUP BY t.job_id", [job_ids]).fetchall()))


def where_jobs_wait(platform: Platform, tenant, job_ids: list[str]) -> str:
    """For jobs that did not end (or were not settled): their last events in ingest's log, the router's attempts of
    them and what the services' logs say of them, so that a run that fails says where."""
    views = {job_id: tenant.job(job_id) for job_id in job_ids}
    waiting = [job_id for job_id, view in views.items()
               if view["state"] not in FINAL_STATES or view["billing"]["state"] not in ("settled", "rejected")]
    lines = [f"{len(waiting)} jobs not final or not settled: {[(views[j]['state'], views[j]['billing']['state']) for j in waiting[:10]]}"]
    with psycopg.connect(platform.endpoints.database_url) as conn:
        for row in conn.execute("SELECT job_id::text, attempt, state, claimed_by, claimed_until, tries, requested_at"
                                " FROM router.attempt_requests WHERE job_id::text = ANY(%s) ORDER BY requested_at",
                                [waiting]).fetchall():
            lines.append(f"router attempt {row}")
    for job_id in waiting[:3]:
        events = tenant.http.get(f"/v1/jobs/{job_id}/events", params={"limit": 50}).json().get("data", [])
        lines.append(f"{job_id} events: {[(e.get('type'), e.get('time'), e.get('payload', {}).get('state')) for e in events]}")
    for name in SERVICES:  # each logs where its tasks wait (docs/runbooks.md): a job's attempt names the job
        signal_service(platform.fleet, name, signal.SIGUSR1)
    time.sleep(2.0)
    for path in sorted((platform.data_dir / "logs").glob("*.log")):
        said = [line for line in path.read_text(errors="replace").splitlines()
                if any(job_id in line for job_id in waiting) or "Traceback" in line or "ERROR" in line]
        lines += [f"{path.name}: {line[:2000] if ' waits in ' in line else line[:400]}" for line in said[-40:]]
    return "\n".join(lines)


def test_jobs_end_through_kills_of_postgres_the_broker_and_every_service(tmp_path):
    platform = Platform(tmp_path / "data")
    try:
        fleet = platform.start()
        tenant = make_tenant(platform.endpoints, fleet, credits=100_000)
        stream = Stream(fleet.ingest_url, tenant.api_key)
        faults: Counter = Counter()
        unready_seen: list[int | None] = []
        started = time.monotonic()
        stream.thread.start()
        try:
            for what in ROUND * ROUNDS:
                time.sleep(FAULT_GAP_S)
                kill(platform, what, unready_seen)
                faults[what] += 1
            # The jobs of the faults end while others keep coming: what a fault left undone
            # is taken up on a busy platform, not only once it falls idle.
            through_faults = list(stream.job_ids)
            try:
                tenant.wait_settled(through_faults, timeout_s=300)
            except AssertionError:
                print(where_jobs_wait(platform, tenant, through_faults))
                raise
        finally:
            stream.stop.set()
            stream.thread.join(150)
        assert stream.error is None, f"the stream of jobs broke off: {stream.error!r}"
        submitted_for_s = time.monotonic() - started

        try:
            jobs = tenant.wait_settled(stream.job_ids, timeout_s=300)
        except AssertionError:
            print(where_jobs_wait(platform, tenant, stream.job_ids))
            raise
        final_after_s = time.monotonic() - started
        states = Counter(job["state"] for job in jobs.values())
        print(f"\n{len(jobs)} jobs over {submitted_for_s:.0f} s; faults {dict(faults)}; every job final"
              f" {final_after_s:.0f} s after the first submission ({final_after_s - submitted_for_s:.0f} s after"
              f" the last); states {dict(states)}; submissions refused meanwhile {dict(stream.refused)}")

        assert set(states) <= set(FINAL_STATES) and states["succeeded"] == len(stream.job_ids), states
        assert len(set(stream.job_ids)) == len(stream.job_ids)  # a retried submission made one job
        charges = charges_per_job(platform.endpoints.database_url, stream.job_ids)
        assert charges == dict.fromkeys(stream.job_ids, 1)
        images = sum(job["images"] for job in jobs.values())
        assert tenant.balance() == {"posted": 100_000 - images * UNIT_PRICE, "pending": 0,
                                    "available": 100_000 - images * UNIT_PRICE}
        assert dead_letters(platform.data_dir / "logs") == []
        # While PostgreSQL was down ingest said it was not ready (or was not answering at all).
        assert unready_seen and all(status in (503, None) for status in unready_seen), unready_seen
        replays_find_no_difference(platform)
    finally:
        platform.stop("sigterm")
