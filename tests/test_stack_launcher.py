"""`python -m services.stack`: up, demo, and on SIGTERM down with no process left behind."""

import os
import signal
import subprocess
import sys
import time

import psutil

from services.stack.embedded import free_port


def test_sigterm_stops_every_process_the_stack_started(tmp_path):
    port = free_port()
    launcher = subprocess.Popen(
        [sys.executable, "-m", "services.stack", "--data-dir", str(tmp_path / "data"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = launcher.stdout.readline()
            lines.append(line)
            if "press Ctrl-C to stop" in line or launcher.poll() is not None:
                break
        output = "".join(lines)
        assert "press Ctrl-C to stop" in output, output
        assert "credits: reserved 40, charged 40, released 0" in output
        descendants = psutil.Process(launcher.pid).children(recursive=True)
        assert len(descendants) >= 7  # tansu, moto, five services
        # pg_ctl daemonizes PostgreSQL, so it is no descendant: find it by its pid file.
        postmaster = psutil.Process(int((tmp_path / "data" / "pgdata" / "postmaster.pid").read_text().split()[0]))
        descendants.append(postmaster)

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(60) == 0
        gone, alive = psutil.wait_procs(descendants, timeout=30)
        assert alive == [], [p.info for p in alive]
    finally:
        if launcher.poll() is None:  # a failed assertion must not leave the platform running
            launcher.send_signal(signal.SIGTERM)
            launcher.wait(60)
