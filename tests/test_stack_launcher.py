"""`python -m genline_stack`: up, demo, a dead broker replaced and a dead PostgreSQL and service
started again while it serves, and on SIGTERM down with no process left behind; started again
on the same data, it reuses the demo tenant and its key and grants nothing."""

import asyncio
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import uuid

import httpx
import psutil
import pytest

from genline_stack.ports import free_port
from genline_stack.postgres import kill_server, postmaster_of

pytestmark = [pytest.mark.processes, pytest.mark.own_stack]  # starts the platform's processes or the stack's servers again

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(data_dir, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "genline_stack", "--data-dir", str(data_dir), "--port", str(free_port()), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )


def read_until(launcher: subprocess.Popen, marker: str, timeout_s: float = 240) -> str:
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = launcher.stdout.readline()
        lines.append(line)
        if marker in line or (not line and launcher.poll() is not None):
            break
    output = "".join(lines)
    assert marker in output, output
    return output


async def topics_over(bootstrap: str, ca_file) -> list[str]:
    """The broker's topics, asked over TLS checked against `ca_file`, or in plain text; none
    when the broker does not answer that way."""
    from aiokafka.admin import AIOKafkaAdminClient

    options = {"security_protocol": "SSL", "ssl_context": ssl.create_default_context(cafile=ca_file)} if ca_file else {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **options)
    try:
        await asyncio.wait_for(admin.start(), 15)
        return await admin.list_topics()
    except Exception:
        return []
    finally:
        await admin.close()


def demo_key(output: str) -> str:
    return re.search(r"demo tenant API key: (\S+)", output).group(1)


def job_succeeds(api: str, key: str, timeout_s: float = 120) -> str:
    """Submit a job (again, as a client would, while the platform says it is briefly away)
    and return the state it ends in."""
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}
    deadline = time.monotonic() + timeout_s
    while (job := httpx.post(f"{api}/v1/jobs", json={"prompt": "a lighthouse", "images": 1}, headers=headers,
                             timeout=10)).status_code == 503 and time.monotonic() < deadline:
        time.sleep(int(job.headers.get("Retry-After", "1")))
    assert job.status_code == 202, job.text
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/v1/jobs/{job.json()['id']}", headers=headers, timeout=10).json()["state"]
        if state in ("succeeded", "partially_succeeded", "failed", "rejected", "canceled", "expired"):
            return state
        time.sleep(0.3)
    return state


def test_sigterm_stops_every_process_the_stack_started_and_a_second_run_reuses_the_demo_tenant(tmp_path):
    launcher = launch(tmp_path / "data")
    try:
        output = read_until(launcher, "press Ctrl-C to stop")
        assert "credits: reserved 40, charged 40, released 0" in output
        assert "demo tenant: 960 credits available, 1 grant(s)" in output
        # The services reached the broker over TLS, under the stack's own CA; nothing else answers.
        kafka = re.search(r"embedded stack up: kafka (\S+),", output).group(1)
        ca = tmp_path / "data" / "credentials" / "kafka-tls" / "ca.pem"
        assert asyncio.run(topics_over(kafka, ca)) and not asyncio.run(topics_over(kafka, None))
        # The operator's commands run with the environment it wrote, as the documentation says (docs/guides/backups.md).
        operator = subprocess.run(["bash", "-c", f"set -a; . {tmp_path / 'data' / 'operator.env'}; set +a;"
                                   f" {sys.executable} -m genline_cli replay ledger"],
                                  capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert operator.returncode == 0 and "no differences" in operator.stdout, operator.stdout + operator.stderr

        # The broker dies: an empty one takes its place, and the platform goes on serving.
        [broker] = [p for p in psutil.Process(launcher.pid).children(recursive=True) if "tansu" in p.name()]
        broker.kill()
        read_until(launcher, "the broker exited; starting an empty one")
        # PostgreSQL dies (postmaster and backends): started again on its data, it recovers.
        pgdata = tmp_path / "data" / "pgdata"
        kill_server(pgdata)
        read_until(launcher, "PostgreSQL exited; starting it again on its data")
        # A service dies: started again, as an orchestrator would.
        [delivery] = [p for p in psutil.Process(launcher.pid).children(recursive=True)
                      if "services.delivery" in p.cmdline()]
        delivery.kill()
        read_until(launcher, "delivery exited (-9); starting it again")
        api = re.search(r"public API (\S+)", output).group(1)
        assert job_succeeds(api, demo_key(output)) == "succeeded"

        descendants = psutil.Process(launcher.pid).children(recursive=True)
        assert len(descendants) >= 7  # seaweedfs, tansu, five services
        # pg_ctl daemonizes PostgreSQL, so it is no descendant: find it by its pid file.
        postmaster = postmaster_of(tmp_path / "data" / "pgdata")
        descendants.append(postmaster)

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(60) == 0
        gone, alive = psutil.wait_procs(descendants, timeout=30)
        assert alive == [], [p.info for p in alive]
    finally:
        if launcher.poll() is None:  # a failed assertion must not leave the platform running
            launcher.send_signal(signal.SIGTERM)
            launcher.wait(60)

    again = launch(tmp_path / "data", "--exit-after-demo")
    try:
        second = read_until(again, "demo finished")
        assert demo_key(second) == demo_key(output)
        # The job after the deaths (10) and the second demo (40) paid, nothing granted.
        assert "demo tenant: 910 credits available, 1 grant(s)" in second
        assert again.wait(60) == 0
    finally:
        if again.poll() is None:
            again.send_signal(signal.SIGTERM)
            again.wait(60)
