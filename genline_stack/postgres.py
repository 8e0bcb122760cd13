"""The embedded stack's PostgreSQL (the `pgserver` wheel): passwords for every role but the
administrator on its socket, room for the connections a stack's fleets take, its dynamic
shared memory in its data folder, the processes serving a data folder (killed, their shared
memory too), and waiting out crash recovery."""

import atexit
import contextlib
import ctypes
import re
import time
from dataclasses import dataclass
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


# A service holds some twelve connections (its pool, its listeners, its migrations), so five
# services take about sixty of PostgreSQL's default hundred; a replica, a second fleet beside the
# first (the tests' own fleets, a rolling update's other release) or the operator's commands
# then run out ("remaining connection slots are reserved").
MAX_CONNECTIONS = 400
# Dynamic shared memory (the statistics' areas as they grow, parallel queries) in files under
# the data folder (pg_dynshmem), not in /dev/shm: a killed server's segments there are removed
# by the next server started on the folder, or go with the folder, where in /dev/shm they stayed
# in memory until the machine restarted (two a kill, about half a megabyte; after two days of the
# suite's runs on one machine, 664 files and 360 MB).
DYNAMIC_SHARED_MEMORY = "mmap"


def apply_settings(server: "PostgresServer") -> bool:
    """Sets max_connections to at least MAX_CONNECTIONS and the dynamic shared memory's kind to
    DYNAMIC_SHARED_MEMORY; whether the server must start again for them to hold (once for a
    new data folder: neither takes effect before)."""
    restart = False
    if int(setting_of(server, "max_connections") or 0) < MAX_CONNECTIONS:
        server.psql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS};")
        restart = True
    if setting_of(server, "dynamic_shared_memory_type") != DYNAMIC_SHARED_MEMORY:
        server.psql(f"ALTER SYSTEM SET dynamic_shared_memory_type = '{DYNAMIC_SHARED_MEMORY}';")
        restart = True
    return restart


def with_settings(server: "PostgresServer", pgdata: Path) -> "PostgresServer":
    """`server` running with `apply_settings`' settings: started again on `pgdata` where they
    need a start (once for a new data folder)."""
    from pgserver.postgres_server import get_server

    if not apply_settings(server):
        return server
    server.cleanup()
    return get_server(pgdata, cleanup_mode="stop")


def setting_of(server: "PostgresServer", name: str) -> str | None:
    said = server.psql(f"SELECT setting FROM pg_settings WHERE name = '{name}';")
    match = re.search(r"^ *(\S+) *$", said.split("\n", 2)[-1], flags=re.M)
    return match.group(1) if match is not None else None


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """The postmaster and backends serving `pgdata` (each runs in it)."""
    found = []
    for process in psutil.process_iter(["cwd"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if process.info["cwd"] and Path(process.info["cwd"]).resolve() == pgdata.resolve():
                found.append(process)
    return found


def postmaster_of(pgdata: Path) -> psutil.Process:
    """A PostgreSQL server's first process, by the pid its data folder names."""
    return psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))


def running_postmaster(pgdata: Path) -> psutil.Process | None:
    """The postmaster its pid file names, if that process still runs in `pgdata` (a pid file
    left by a server that died names a process that may since be another's)."""
    try:
        process = postmaster_of(pgdata)
        return process if Path(process.cwd()).resolve() == pgdata.resolve() else None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def kill_server(pgdata: Path, timeout_s: float = 30) -> None:
    """SIGKILL to the server of `pgdata`, postmaster and backends, until none is left.

    The postmaster first, so that it forks nothing more; then every process still in the
    folder, looked for again until none is found: reading the process table takes a while on
    a busy machine, and a backend the postmaster forked meanwhile (the services reconnect
    without pause) outlived a kill of the list read before it, holding the shared memory a
    new server needs ("pre-existing shared memory block is still in use")."""
    deadline = time.monotonic() + timeout_s
    segment = shared_memory_of(pgdata)
    postmaster = running_postmaster(pgdata)
    killing = [postmaster] if postmaster is not None else postgres_processes(pgdata)
    while killing:
        for process in killing:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        # Until each is gone, reaped too: a dead postmaster not yet reaped still runs for
        # pgserver, whose cleanup then tries to stop it and fails on the pid that vanished.
        psutil.wait_procs(killing, timeout=max(0.0, deadline - time.monotonic()))
        killing = postgres_processes(pgdata)
        if killing and time.monotonic() >= deadline:
            raise TimeoutError(f"PostgreSQL's processes in {pgdata} outlived SIGKILL for {timeout_s}s: {killing}")
    if segment is not None and postmaster is not None:
        remove_shared_memory(segment, creator=postmaster.pid)


@dataclass(frozen=True, kw_only=True)
class Segment:
    """The System V segment a server's pid file names (its seventh line): the interlock, 56
    bytes, that keeps two servers off one data folder."""

    key: int
    id: int


def shared_memory_of(pgdata: Path) -> Segment | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        key, segment = (pgdata / "postmaster.pid").read_text().splitlines()[6].split()
        return Segment(key=int(key), id=int(segment))
    return None


IPC_RMID = 0  # <sys/ipc.h>


def remove_shared_memory(segment: Segment, *, creator: int) -> None:
    """Removes a killed server's segment. A server stopped cleanly removes its own; a killed
    one leaves it to the next server on the folder, and a folder thrown away after a kill (a
    test's, a bench's) left it to the machine, until the kernel's count of segments was
    reached. Only the segment of that key and id, made by the postmaster killed, and with
    nothing attached (the server's every process is gone): never another's that took the id."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]:
            key, shmid, _perms, _size, cpid, _lpid, attached = (int(field) for field in line.split()[:7])
            if (key, shmid, cpid, attached) == (segment.key, segment.id, creator, 0):
                ctypes.CDLL(None, use_errno=True).shmctl(shmid, IPC_RMID, None)
