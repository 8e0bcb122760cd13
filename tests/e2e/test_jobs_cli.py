"""`genline jobs …` as a user runs it: a subprocess with GENLINE_API_URL and GENLINE_API_KEY,
against the five services as processes."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

GENLINE = [sys.executable, "-m", "genline_cli"]
ROOT = Path(__file__).resolve().parents[2]


def genline(*args: str, api_url: str, api_key: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    env = os.environ | {"GENLINE_API_URL": api_url, "GENLINE_API_KEY": api_key}
    return subprocess.run([*GENLINE, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)


def test_submit_wait_download_json_writes_the_delivered_images(tenant_factory, platform, tmp_path):
    tenant = tenant_factory()
    run = genline("jobs", "submit", "a red bicycle against a brick wall", "--images", "2", "--candidates", "4",
                  "--wait", "--download", str(tmp_path / "out"), "--json",
                  api_url=platform.ingest_url, api_key=tenant.api_key)

    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)  # stdout holds the JSON and nothing else
    assert job["state"] == "succeeded"
    written = {Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in job["files"]}
    assert sorted(written.values()) == sorted(o["sha256"] for o in job["outputs"]) and len(written) == 2
    assert tenant.job(job["id"])["outputs"][0]["sha256"] in written.values()


def test_get_list_and_cancel_print_json_and_problems_exit_non_zero(tenant_factory, platform):
    tenant, stranger = tenant_factory(), tenant_factory()
    job_id = tenant.submit(images=1, candidates=2, seed=4)
    as_owner = {"api_url": platform.ingest_url, "api_key": tenant.api_key}

    listed = genline("jobs", "list", "--json", **as_owner)
    got = genline("jobs", "get", job_id, "--json", **as_owner)
    foreign = genline("jobs", "get", job_id, api_url=platform.ingest_url, api_key=stranger.api_key)
    invalid = genline("jobs", "submit", "a bicycle", "--images", "101", **as_owner)

    assert [j["id"] for j in json.loads(listed.stdout)["data"]] == [job_id]
    assert json.loads(got.stdout)["id"] == job_id
    assert foreign.returncode == 1 and foreign.stdout == ""
    assert "Not found (404)" in foreign.stderr and "Traceback" not in foreign.stderr
    assert invalid.returncode == 1 and "images:" in invalid.stderr and "Traceback" not in invalid.stderr


def test_an_unreachable_api_or_a_missing_key_is_an_error_message_not_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GENLINE_API_KEY"}
    missing = subprocess.run([*GENLINE, "jobs", "list"], env=env, cwd=ROOT, capture_output=True, text=True)
    unreachable = genline("jobs", "get", "x", api_url="http://127.0.0.1:9", api_key="gl_x")

    assert missing.returncode == 2 and "GENLINE_API_KEY" in missing.stderr
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr


def test_watch_prints_every_state_in_order(tenant_factory, platform):
    tenant = tenant_factory()
    job_id = tenant.submit(images=1, candidates=2, seed=6)
    as_owner = {"api_url": platform.ingest_url, "api_key": tenant.api_key}

    watched = genline("jobs", "watch", job_id, **as_owner)
    as_json = genline("jobs", "watch", job_id, "--json", **as_owner)  # the job is final now: the whole log again

    expected = ["submitted", "admitted", "generating", "scoring", "delivering", "succeeded"]
    assert watched.returncode == 0, watched.stderr
    printed = [line.split()[3] for line in watched.stdout.splitlines() if line.split()[2:3] == ["state"]]
    assert printed == expected
    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["payload"]["state"] for e in entries if e["type"] == "state"] == expected
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
