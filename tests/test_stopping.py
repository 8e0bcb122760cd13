"""Whatever stops a program that started the stack (SIGTERM, SIGINT, an exception), nothing it
started is left running: a bench mid-run, the stack alone, the launcher during its demo, the
launcher whose services cannot start. "What it started" is every process that runs with the
program's own TMPDIR, which all its descendants inherit, PostgreSQL too, though pg_ctl
daemonizes it (tests/test_stack_launcher.py stops the launcher while it serves)."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from genline_stack.ports import free_port
from services.common.runtime import STOP_GRACE_S

pytestmark = [pytest.mark.processes, pytest.mark.own_stack]  # starts the stack's servers and the platform's processes

ROOT = Path(__file__).resolve().parents[1]
GONE_WITHIN_S = 30


def start(args: list[str], tmp: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A program of the project whose temporary folders (the stack's data) are under `tmp`."""
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=os.environ | {"TMPDIR": str(tmp)} | (env or {}))


def read_until(program: subprocess.Popen[str], marker: str, timeout_s: float = 300) -> str:
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = program.stdout.readline()
        lines.append(line)
        if marker in line or (not line and program.poll() is not None):
            break
    output = "".join(lines)
    assert marker in output, output[-4000:]
    return output


def ours(tmp: Path) -> list[psutil.Process]:
    """Every process whose TMPDIR is `tmp`: the program and everything it started and they
    started in turn, which inherit its environment (PostgreSQL too, which pg_ctl daemonizes)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("TMPDIR") == str(tmp) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def left_running(tmp: Path) -> list[str]:
    """What still runs GONE_WITHIN_S after the program ended (nothing, as soon as that is so)."""
    deadline = time.monotonic() + GONE_WITHIN_S
    while (left := ours(tmp)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return [" ".join(p.cmdline())[:200] for p in left]


def stop_and_check(program: subprocess.Popen[str], tmp: Path, how: signal.Signals) -> int:
    """Sends `how`; the program's exit code, once it is checked that nothing of its own runs
    GONE_WITHIN_S later."""
    assert len(ours(tmp)) >= 4, "the program has not started the stack (its broker, object store and database)"
    program.send_signal(how)
    code = program.wait(STOP_GRACE_S + GONE_WITHIN_S)  # its services may take their grace, busy as they are
    assert left_running(tmp) == []
    return code


def kill_ours(program: subprocess.Popen[str], tmp: Path) -> None:
    """The test's own cleanup, whatever it found running."""
    program.kill()
    for process in ours(tmp):
        with contextlib.suppress(psutil.Error):
            process.kill()


@pytest.fixture
def tmp() -> Iterator[Path]:
    """The program's TMPDIR: short, as PostgreSQL's socket path must be (about 100 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="stop-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_bench_stopped_by_sigterm_mid_run_leaves_no_process_of_its_own(tmp):
    bench = start(["bench/batch.py", "--small", "20", "--large", "5000"], tmp)
    try:
        read_until(bench, "20 lines:")  # the large batch is running now
        assert stop_and_check(bench, tmp, signal.SIGTERM) == 128 + signal.SIGTERM
    finally:
        kill_ours(bench, tmp)


def test_the_stack_alone_stopped_by_sigint_leaves_no_process(tmp):
    bench = start(["bench/stack.py", "--requests", "100000"], tmp)
    try:
        read_until(bench, "stack start, restart on the same data")  # measuring the restarted stack
        assert stop_and_check(bench, tmp, signal.SIGINT) == 128 + signal.SIGINT
    finally:
        kill_ours(bench, tmp)


def launcher(tmp: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return start(["-m", "genline_stack", "--data-dir", str(tmp / "data"), "--port", str(free_port()),
                  "--exit-after-demo"], tmp, env)


def test_the_demo_stopped_by_sigterm_mid_order_leaves_no_process(tmp):
    demo = launcher(tmp)
    try:
        read_until(demo, "demo job")  # submitted, being made
        assert stop_and_check(demo, tmp, signal.SIGTERM) == 0
        assert "SIGTERM: stopping" in demo.stdout.read()
    finally:
        kill_ours(demo, tmp)


def test_a_launcher_whose_service_cannot_start_stops_everything_it_started(tmp):
    # A router that cannot read its provider registry exits at start: the fleet's start raises.
    demo = launcher(tmp, {"GENLINE_PROVIDERS_PATH": str(tmp / "no-such-registry.yaml")})
    try:
        assert demo.wait(300) == 1
        output = demo.stdout.read()
        assert "embedded stack up" in output and "error: router exited" in output, output[-3000:]
        assert left_running(tmp) == []
    finally:
        kill_ours(demo, tmp)
