"""The embedded stack's PostgreSQL (the `pgserver` wheel): passwords for every role but the
administrator on its socket, the processes serving a data folder, and waiting out crash recovery."""

import atexit
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

POSTGRES_RECOVERY_TIMEOUT_S = 180


def forget_pgserver_handle(pgdata: Path) -> None:
    """Drop the handle pgserver registered before its start timed out, so the next
    `get_server` looks at the data folder afresh instead of returning a server that never started."""
    from pgserver.postgres_server import PostgresServer

    broken = PostgresServer._instances.pop(pgdata, None)
    if broken is not None:
        atexit.unregister(broken._cleanup)


def wait_for_postmaster_ready(pgdata: Path, timeout_s: float) -> None:
    from pgserver.utils import PostmasterInfo

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is not None and info.is_running() and info.status == "ready":
            return
        time.sleep(0.5)
    raise TimeoutError(f"PostgreSQL in {pgdata} is not ready after {timeout_s}s of crash recovery")


# The administrator, on the server's own socket, without a password (the stack provisions
# through it); every other role, the services' included, with its password.
PG_HBA = """local all postgres trust
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


def require_passwords(server: "PostgresServer") -> None:
    hba = Path(server.pgdata) / "pg_hba.conf"
    if hba.read_text() != PG_HBA:
        hba.write_text(PG_HBA)
        server.psql("SELECT pg_reload_conf();")


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """The postmaster and backends serving `pgdata` (each runs in it)."""
    found = []
    for process in psutil.process_iter(["cwd"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if process.info["cwd"] and Path(process.info["cwd"]).resolve() == pgdata.resolve():
                found.append(process)
    return found
