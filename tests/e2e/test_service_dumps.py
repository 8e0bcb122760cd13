"""What a running service waits on, on demand, for a job that stands still with no error to
say why (docs/runbooks.md): SIGUSR1 logs each of its tasks with the calls it is suspended in,
SIGUSR2 every thread's Python stack. Each service keeps serving after both."""

import os
import signal
from pathlib import Path

import httpx

from genline_stack.fleet import SERVICES
from tests.polling import until


def said_after(signum: int, pid: int, log: Path, found: str) -> str:
    """What the log gained after `signum` was sent to `pid`, once it holds `found`."""
    start = log.stat().st_size
    os.kill(pid, signum)

    def gained() -> str:
        text = log.read_bytes()[start:].decode(errors="replace")
        return text if found in text else ""

    return until(gained, 30, f"no {found!r} in {log.name} after signal {signum}")


def test_sigusr1_logs_each_task_s_awaits_and_sigusr2_every_thread_s_stack(platform):
    for name in SERVICES:
        log, pid = platform.log_dir / f"{name}.log", platform.processes[name].pid
        tasks = [line for line in said_after(signal.SIGUSR1, pid, log, " tasks listed").splitlines() if " waits in " in line]
        # Its background tasks are there, each down to the call it is suspended in.
        assert any(f"task {name}-outbox-relay waits in " in line and "services/common/bus/outbox.py:" in line
                   for line in tasks), (name, tasks[:5])
        # The main thread's stack, down from `python -m services.<name>` to the loop it runs.
        stacks = said_after(signal.SIGUSR2, pid, log, 'services/common/runtime.py", line')
        assert "most recent call first" in stacks and "uvicorn/server.py" in stacks, (name, stacks[:2000])
        assert httpx.get(f"{platform.url(name)}/readyz", timeout=10).status_code == 200
