"""Under load, ingest reads the topics of four services in no set order; a client polling
its jobs must still never see one final without everything its final state implies."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.conftest import FINAL

JOBS, CLIENTS = 40, 4


def what_is_missing(job: dict) -> list[str]:
    """What a final job's view lacks; nothing for a complete one."""
    missing = []
    if len(job["scores"]) < job["candidates"]:
        missing.append(f"scores ({len(job['scores'])} of {job['candidates']})")
    if not job["selected"] or not set(job["selected"]) <= {s["index"] for s in job["scores"]}:
        missing.append("selection")
    if len(job["outputs"]) != job["images"]:
        missing.append(f"outputs ({len(job['outputs'])} of {job['images']})")
    if job["billing"]["state"] != "settled" or job["billing"]["charged"] is None:
        missing.append(f"billing ({job['billing']['state']})")
    return missing


def test_a_job_polled_under_load_is_never_final_without_its_scores_outputs_and_billing(tenant_factory):
    tenant = tenant_factory(credits=50_000)
    bodies = [{"images": 2, "candidates": 4, "width": 128, "height": 128, "seed": i} for i in range(JOBS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        job_ids = list(pool.map(lambda body: tenant.submit(**body), bodies))

    final_views: dict[str, dict] = {}
    incomplete: list[str] = []
    lock = threading.Lock()

    def poll(share: list[str]) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            waiting = [j for j in share if j not in final_views]
            if not waiting:
                return
            for job_id in waiting:
                job = tenant.job(job_id)
                if job["state"] in FINAL:
                    with lock:
                        final_views[job_id] = job
                        if missing := what_is_missing(job):
                            incomplete.append(f"{job_id} {job['state']} without {', '.join(missing)}")

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(poll, [job_ids[i::CLIENTS] for i in range(CLIENTS)]))

    assert len(final_views) == JOBS, f"{JOBS - len(final_views)} jobs never became final"
    assert incomplete == []
    assert {job["state"] for job in final_views.values()} == {"succeeded"}
