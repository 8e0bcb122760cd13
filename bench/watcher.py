"""Watches jobs through ingest's read model, as bench/e2e.py measures them: when each job is
first seen final and settled, from the moment its submission was accepted."""

import threading
import time

import psycopg

from services.common.contracts import FINAL_STATES
from services.ingest.jobs.store import log_channel


class Watcher:
    """Reads ingest's read model directly (cheaper than the API for the services under
    test) and notes when each job is first seen final and settled. With `listen`, it reads
    again when ingest announces new entries in its jobs' log (as a stream's client would
    hear of them), and every `interval_s` besides: polling every few milliseconds instead
    took 0.12 of this machine's two cores from the platform it measured. Under a burst it
    reads at most every `coalesce_s` (a job's latency there is seconds)."""

    def __init__(self, database_url: str, interval_s: float, listen: bool = False, coalesce_s: float = 0) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.listener = None
        if listen:
            self.listener = psycopg.connect(database_url, autocommit=True)
            self.listener.execute(f"LISTEN {log_channel('ingest')}")
        # After a notification, wait this long for more before reading: under a burst every
        # job writes a dozen entries, and a read for each took the platform's database time.
        self.interval_s, self.coalesce_s = interval_s, coalesce_s
        self.pending: dict[str, float] = {}  # job id → time of its 202
        self.done: dict[str, tuple[float, float]] = {}  # job id → (202, seen settled)
        self.lock = threading.Lock()

    @property
    def backend_pids(self) -> set[int]:
        """The PostgreSQL backends serving this watcher: the bench's, not the platform's."""
        return {conn.info.backend_pid for conn in (self.conn, self.listener) if conn is not None}

    def submitted(self, job_id: str, at: float) -> None:
        with self.lock:
            self.pending[job_id] = at

    def poll(self) -> None:
        with self.lock:
            ids = list(self.pending)
        if not ids:
            return
        rows = self.conn.execute(
            "SELECT id::text FROM ingest.jobs WHERE id = ANY(%s::uuid[]) AND state = ANY(%s)"
            " AND view->'billing'->>'state' IN ('settled', 'rejected')", [ids, list(FINAL_STATES)]).fetchall()
        seen = time.time()
        with self.lock:
            for (job_id,) in rows:
                self.done[job_id] = (self.pending.pop(job_id), seen)

    def wait_all(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.done) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count - len(self.done)} jobs not settled after {timeout_s}s")
            self.poll()
            if self.listener is None:
                time.sleep(self.interval_s)
            else:
                for _ in self.listener.notifies(timeout=self.interval_s, stop_after=1):
                    pass
                if self.coalesce_s:
                    time.sleep(self.coalesce_s)
                    for _ in self.listener.notifies(timeout=0):  # drained: the next read covers them
                        pass

    def views(self, job_ids: list[str]) -> dict[str, dict]:
        rows = self.conn.execute("SELECT id::text, view FROM ingest.jobs WHERE id = ANY(%s::uuid[])",
                                 [job_ids]).fetchall()
        return dict(rows)
