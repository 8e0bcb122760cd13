"""`genline replay jobs` on the running platform: the read models rebuilt from every topic
equal ingest's; a view changed behind the projection's back is found, field by field."""

import psycopg

from services.ingest.jobs.replay import JobReplay, replay_jobs
from services.ingest.settings import IngestSettings


def replay(endpoints, tenant_id: str, settle_s: float) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = replay_jobs(endpoints.operator_settings(IngestSettings), JobReplay(tenant=tenant_id, settle_s=settle_s),
                       out=lines.append)
    return code, lines


def test_replayed_jobs_equal_the_read_model_and_a_changed_view_is_found(tenant_factory, endpoints):
    tenant = tenant_factory(credits=1_000)
    job_ids = [tenant.submit(images=1 + i, candidates=2 + i, seed=i) for i in range(3)]
    poor = tenant_factory(credits=0)
    job_ids.append(poor.submit(images=1, candidates=2))  # rejected: another path through the read model
    tenant.wait_settled(job_ids[:3])
    poor.wait_settled(job_ids[3:])

    code, lines = replay(endpoints, tenant.id, settle_s=30)
    assert code == 0, lines
    assert lines[0].endswith("into 3 jobs") and lines[-1] == "no differences"

    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute("""UPDATE ingest.jobs SET view = jsonb_set(view, '{billing,charged}', '0') WHERE id = %s""",
                     [job_ids[1]])
    code, lines = replay(endpoints, tenant.id, settle_s=0)
    assert code == 1
    differences = [line for line in lines if line.startswith("DIFFERENCE")]
    assert len(differences) == 1 and differences[0].startswith(f"DIFFERENCE job={job_ids[1]} billing:"), lines
    assert lines[-1] == "1 job(s) differ"
    assert replay(endpoints, poor.id, settle_s=30)[0] == 0
