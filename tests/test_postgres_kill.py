"""The embedded stack's PostgreSQL killed (postmaster and backends, as an OOM kill or a power
cut would) while clients keep connecting: nothing of it outlives the kill, its shared memory
included (the dynamic segments kept in its data folder, removed by the next server there), and
a new server starts on its data folder at once."""

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import psycopg
import pytest
from pgserver.postgres_server import PostgresServer, get_server

from genline_stack.postgres import kill_server, postgres_processes, running_postmaster, shared_memory_of, with_settings
from tests.polling import until

pytestmark = pytest.mark.processes  # starts a PostgreSQL server of its own

KILLS = 2
# A process in the data folder that forks a child there every few milliseconds, as the
# postmaster forks a backend for every connection (bounded: at most 300 children).
FORKING = """
import os, sys, time
os.chdir(sys.argv[1])
for _ in range(300):
    if os.fork() == 0:
        time.sleep(120)
        os._exit(0)
    time.sleep(0.003)
time.sleep(120)
"""


def segments() -> set[int]:
    """The ids of the machine's System V shared memory segments."""
    return {int(line.split()[1]) for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]}


def connecting(uri: str, stop: threading.Event) -> None:
    """What the services do while their database is away: connect again, without pause."""
    while not stop.is_set():
        try:
            with psycopg.connect(uri, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            pass


def started(pgdata: Path) -> PostgresServer:
    """A server on `pgdata` with the stack's settings, as the stack starts its own (a killed
    server of pgserver's defaults leaves its dynamic shared memory in /dev/shm)."""
    return with_settings(get_server(pgdata, cleanup_mode="stop"), pgdata)


def test_a_server_killed_while_clients_connect_leaves_no_process_and_starts_again(tmp_path):
    pgdata = tmp_path / "pgdata"
    server = started(pgdata)
    for _ in range(KILLS):
        uri = server.get_uri()
        stop = threading.Event()
        clients = [threading.Thread(target=connecting, args=(uri, stop)) for _ in range(3)]
        for client in clients:
            client.start()
        try:
            # Each client's connection is a backend the postmaster forks: some are forked
            # while the kill reads the process table.
            postmaster, segment = running_postmaster(pgdata), shared_memory_of(pgdata)
            assert postmaster is not None and segment is not None and segment.id in segments()
            kill_server(pgdata)
            assert postgres_processes(pgdata) == []
            assert not psutil.pid_exists(postmaster.pid)  # reaped, not a zombie that pgserver would try to stop
            assert segment.id not in segments()  # left, it outlived the folder (a test's, thrown away)
        finally:
            stop.set()
            for client in clients:
                client.join(30)
        server.cleanup()  # forgets the dead server, as the stack does
        # A backend left over holds the old server's shared memory, and this start fails.
        server = get_server(pgdata, cleanup_mode="stop")
        assert "1" in server.psql("SELECT 1;")
    server.cleanup()


def test_processes_that_appear_in_the_folder_during_the_kill_are_killed_too(tmp_path):
    forker = subprocess.Popen([sys.executable, "-c", FORKING, str(tmp_path)])
    try:
        until(lambda: len(postgres_processes(tmp_path)) >= 20, 30, "the forking process never had 20 children", pause_s=0.01)
        kill_server(tmp_path)  # no postmaster.pid: every process in the folder, looked for until none is left
        assert postgres_processes(tmp_path) == []
    finally:
        forker.kill()
        forker.wait(30)
        for left in postgres_processes(tmp_path):  # what a failed kill left: never past the test
            left.kill()


def in_dev_shm(pgdata) -> set[str]:
    """The files of /dev/shm that the server's processes have mapped (POSIX shared memory)."""
    found = set()
    for process in postgres_processes(pgdata):
        try:
            found |= set(re.findall(r"/dev/shm/\S+", Path(f"/proc/{process.pid}/maps").read_text()))
        except OSError:
            pass
    return found


def test_a_killed_servers_dynamic_shared_memory_goes_with_its_data_folder(tmp_path):
    pgdata = tmp_path / "pgdata"
    server = started(pgdata)
    server.psql("CREATE TABLE grown AS SELECT g FROM generate_series(1, 1000) g; ANALYZE grown;")
    # In /dev/shm the segments of a killed server stayed until the machine restarted: the next
    # server on the folder did not remove them, nor did throwing the folder away.
    assert in_dev_shm(pgdata) == set()
    killed = set(os.listdir(pgdata / "pg_dynshmem"))
    assert killed  # its control segment at least
    kill_server(pgdata)
    server.cleanup()
    server = get_server(pgdata, cleanup_mode="stop")
    assert not killed & set(os.listdir(pgdata / "pg_dynshmem"))  # removed by the server started after
    server.cleanup()
