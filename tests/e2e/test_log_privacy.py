"""Prompts stay out of the logs: the fleet runs with GENLINE_REDACT_PROMPTS on (the default),
and a job run end to end leaves its prompt in no line of any service's log."""

import uuid

from genline_stack.fleet import SERVICES


def test_a_job_s_prompt_appears_in_no_log_line_of_any_service(platform, tenant_factory):
    tenant = tenant_factory()
    marker = f"log-marker-{uuid.uuid4().hex}"
    job_id = tenant.submit(prompt=f"a teapot on a windowsill {marker}", images=1, candidates=3, seed=3)
    assert tenant.wait_settled([job_id])[job_id]["state"] == "succeeded"
    invalid = tenant.http.post("/v1/jobs", json={"prompt": marker, "images": "2"})
    assert invalid.status_code == 422

    logs = {name: (platform.log_dir / f"{name}.log").read_text(errors="replace") for name in SERVICES}

    assert all(job_id in text for text in logs.values()), "every service logged the job"
    accepted = [line for line in logs["ingest"].splitlines() if f"accepted job {job_id}" in line]
    assert len(accepted) == 1 and '"prompt": "[prompt redacted]"' in accepted[0]
    assert [name for name, text in logs.items() if marker in text] == []
