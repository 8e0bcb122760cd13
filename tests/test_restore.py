"""The database restore, rehearsed as docs/guides/backups.md ("Restoring the database") has
it: the services stopped, a PostgreSQL backup of every service's schema (pg_dump), the
database restored into an empty server, the topics empty (a new broker), the services
started, `genline bus rebuild --all` run as the operator, and the checks run as the auditor.
Nothing is lost: the replays find no difference, every job reads as it did, every delivered
link downloads the same bytes, the receipts verify against the keys document, balances are
as they were, and a new job goes through. The figures (rows restored, records rebuilt, time)
are printed."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from genline_client import verify_chain
from genline_stack.credentials import AUDITOR, OPERATOR, read_person
from genline_stack.embedded import EmbeddedStack, Endpoints
from genline_stack.fleet import SERVICES, ServiceFleet
from tests.e2e.conftest import make_tenant
from tests.test_restart import FLEET_ENV, delivered, sha256_at

pytestmark = [pytest.mark.processes, pytest.mark.own_stack]  # starts the stack's servers and the platform's processes again

ROOT = Path(__file__).resolve().parents[1]


def postgres_tool(name: str) -> str:
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)


def backup(database_url: str, path: Path) -> None:
    """Every service's schema, in one snapshot, as a scheduled backup would take it."""
    schemas = [argument for service in SERVICES for argument in ("--schema", service)]
    subprocess.run([postgres_tool("pg_dump"), "--format=custom", f"--file={path}", *schemas, database_url],
                   check=True, capture_output=True, timeout=300)


def restore(database_url: str, path: Path) -> None:
    subprocess.run([postgres_tool("pg_restore"), "--exit-on-error", f"--dbname={database_url}", str(path)],
                   check=True, capture_output=True, timeout=300)


def rows_in(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = conn.execute("SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s)",
                              [list(SERVICES)]).fetchall()
        return sum(conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0] for schema, table in tables)


def lasting(value):
    """A job as read, without what is signed afresh on every read (links and their expiry)."""
    if isinstance(value, dict):
        return {k: lasting(v) for k, v in value.items() if "url" not in k and "expires" not in k}
    if isinstance(value, list):
        return [lasting(v) for v in value]
    return value


def genline(endpoints: Endpoints, person: str, *args: str) -> str:
    """`genline ARGS` as `person` (the operator or the auditor): their own database role and
    the broker's address; no service key, no object-store key."""
    url = read_person(Path(endpoints.credentials_dir), person).database_url(endpoints.database_url)
    env = {name: value for name, value in endpoints.service_env().items() if not name.startswith("GENLINE_S3_")}
    scripts = Path(sysconfig.get_path("scripts"))
    result = subprocess.run([sys.executable, "-m", "genline_cli", *args], capture_output=True, text=True, timeout=300,
                            cwd=ROOT, env=os.environ | env | {"GENLINE_DATABASE_URL": url, "GENLINE_ENVIRONMENT": "test",
                                                             "PATH": f"{scripts}:{os.environ['PATH']}"})
    assert result.returncode == 0, f"genline {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def test_a_database_restored_on_empty_topics_and_rebuilt_from_the_journals_loses_nothing(tmp_path):
    data = tmp_path / "data"
    stack, fleet = EmbeddedStack(data_dir=data, rotate_after_records=None), None
    try:
        endpoints = stack.start()
        fleet = ServiceFleet(endpoints=endpoints, log_dir=data / "logs", extra_env=FLEET_ENV)
        fleet.start_all()
        tenant = make_tenant(endpoints, fleet, credits=1_000)
        job_ids = [tenant.submit(images=1 + i % 2, candidates=2 + i % 2, seed=i) for i in range(8)]
        jobs = tenant.wait_settled(job_ids)
        assert {job["state"] for job in jobs.values()} == {"succeeded"}
        links, receipts, balance = delivered(tenant, job_ids), tenant.http.get("/v1/receipts").json()["data"], \
            tenant.balance()
        # 1. The services stopped (a late write, an inbox row of an event still in flight, would
        # make the backup and the count differ), the backup taken; the database lost with the
        # broker's log.
        fleet.stop_all()
        backup(endpoints.database_url, tmp_path / "genline.dump")
        rows = rows_in(endpoints.database_url)
        stack.stop()
        shutil.rmtree(data / "pgdata")
        started = time.monotonic()
        # 2, 3. An empty server (the roles made again, as the Secrets name them) and a new, empty
        # broker with the topics made again; the database restored from the backup.
        stack = EmbeddedStack(data_dir=data, rotate_after_records=None)
        endpoints = stack.start()
        assert rows_in(endpoints.database_url) == 0
        restore(endpoints.database_url, tmp_path / "genline.dump")
        assert rows_in(endpoints.database_url) == rows
        # 4, 5. The services started; every journal published again, as the operator.
        fleet = ServiceFleet(endpoints=endpoints, log_dir=data / "logs-restored", extra_env=FLEET_ENV)
        fleet.start_all()
        rebuilt = genline(endpoints, OPERATOR, "bus", "rebuild", "--all")
        records = sum(int(n) for n in re.findall(r": (\d+) rows to publish again", rebuilt))
        assert records > 0, rebuilt
        # 6. The checks, as the auditor: the live state equals the journals.
        for replay in ("ledger", "audit", "jobs"):
            assert genline(endpoints, AUDITOR, "replay", replay).rstrip().endswith("no differences")
        took = time.monotonic() - started

        tenant.http = httpx.Client(base_url=fleet.ingest_url, headers=dict(tenant.http.headers), timeout=10)
        assert {j: lasting(tenant.job(j)) for j in job_ids} == {j: lasting(job) for j, job in jobs.items()}
        assert delivered(tenant, job_ids).keys() == links.keys()
        assert all(sha256_at(url) == sha for url, sha in delivered(tenant, job_ids).values())
        assert tenant.http.get("/v1/receipts").json()["data"] == receipts
        keys = httpx.get(f"{fleet.ingest_url}/.well-known/genline-keys.json", timeout=10).json()
        assert [body["sequence"] for body in verify_chain(receipts, keys)] == list(range(1, len(job_ids) + 1))
        assert tenant.balance() == balance
        after = tenant.submit(images=1, candidates=2, seed=99)  # the platform goes on
        assert tenant.wait_settled([after])[after]["state"] == "succeeded"
        print(f"\nrestore rehearsal: {rows} rows restored, {records} records published again,"
              f" {len(job_ids)} jobs and {len(receipts)} receipts checked, {took:.1f} s from the empty server"
              " to the last replay")
    finally:
        if fleet is not None:
            fleet.stop_all()
        stack.stop()
