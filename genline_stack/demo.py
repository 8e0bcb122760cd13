"""The demo job: submitted through the public API and followed to its links."""

import time
from collections.abc import Callable
from typing import Any

import httpx

from services.common.contracts import FINAL_STATES

# How long the demo waits for its job to be final and settled.
DEMO_TIMEOUT_S = 180
# Where the demo says what it sees: print, or a test's list.
Say = Callable[[str], object]


def submit_demo_job(client: httpx.Client, images: int = 4, *, candidates: int = 6) -> str:
    response = client.post("/v1/jobs", json={
        "prompt": "a lighthouse on a cliff at dawn, watercolour", "template": "generic",
        "images": images, "candidates": candidates, "width": 512, "height": 512,
    })
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


def follow_job(client: httpx.Client, job_id: str, *, say: Say = print) -> dict[str, Any]:
    """Poll until the job is final and settled (at most DEMO_TIMEOUT_S), printing each new state."""
    deadline, seen = time.monotonic() + DEMO_TIMEOUT_S, None
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] != seen:
            seen = job["state"]
            say(f"  state: {seen:<20} at {job['timestamps'].get(seen, job['updated_at'])}")
        if job["state"] in FINAL_STATES and job["billing"]["state"] in ("settled", "rejected"):
            return job
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} not final after {DEMO_TIMEOUT_S}s (last state {seen})")


def dimension_summary(name: str, dimension: dict[str, Any]) -> str:
    """A dimension the scorer could not measure has no value, only its reason."""
    if dimension["value"] is None:
        return f"{name}=- ({dimension['reason']})"
    return f"{name}={dimension['value']:.3g} ({'ok' if dimension['passed'] else dimension['reason']})"


def print_report(job: dict[str, Any], say: Say = print) -> None:
    say("  candidates:")
    for score in job["scores"]:
        verdict = "PASS" if score["passed"] else "FAIL" if score.get("judged", True) else "NOT JUDGED"
        dims = ", ".join(dimension_summary(name, d) for name, d in score["dimensions"].items())
        if score.get("not_measured"):
            dims += f"; not measured: {', '.join(score['not_measured'])}"
        chosen = " selected" if score["index"] in job["selected"] else ""
        say(f"    #{score['index']}: {verdict}{chosen} score={score['score']:.3f}  {dims}")
    if job.get("failure"):
        say(f"  failure: {job['failure']}")
    say("  delivered links (expire {}):".format(job["outputs"][0]["expires_at"] if job["outputs"] else "-"))
    for output in job["outputs"]:
        say(f"    {output['n']}. {output['url']}")
    billing = job["billing"]
    say(f"  credits: reserved {billing['reserved']}, charged {billing['charged']}, released {billing['released']}")


def run_demo(ingest_url: str, api_key: str, *, say: Say = print) -> bool:
    with httpx.Client(base_url=ingest_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10) as client:
        job_id = submit_demo_job(client)
        say(f"demo job {job_id} submitted")
        job = follow_job(client, job_id, say=say)
        print_report(job, say=say)
        account = client.get("/v1/account").json()
        say(f"  demo tenant: {account['available']} credits available, {len(account['grants'])} grant(s)")
    return bool(job["outputs"])
