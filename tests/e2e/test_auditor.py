"""The auditor's replays under the auditor's own identity: the role genline_auditor (reads every
schema, writes none), no service key, no object-store key. `genline replay ledger` and
`genline replay jobs` find no difference; without the key-encryption key the jobs' replay
compares everything but the sealed prompts and says so, and still finds a changed view."""

from pathlib import Path

import psycopg

from genline_stack.credentials import AUDITOR, kek_env
from services.common.settings import AuditorSettings
from services.ingest.jobs.replay import JobReplay, replay_jobs
from services.ledger.audit_replay import AuditReplay, replay_audit
from services.ledger.replay import LedgerReplay, replay_ledger


def auditor(endpoints, **overrides) -> AuditorSettings:
    return endpoints.person_settings(AUDITOR, AuditorSettings, **overrides)


def test_the_auditor_holds_no_service_key_and_logs_in_as_its_own_role(endpoints):
    settings = auditor(endpoints)
    assert settings.service_key is None and settings.s3_secret_access_key is not None  # the stack's env, unused
    assert AuditorSettings.uses_object_store is False
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "genline_auditor"


def test_the_auditors_replays_pass_with_and_without_the_key_encryption_key(tenant_factory, endpoints):
    tenant = tenant_factory(credits=1_000)
    job_ids = [tenant.submit(images=1 + i, candidates=2 + i, seed=i) for i in range(2)]
    tenant.wait_settled(job_ids)

    lines: list[str] = []
    assert replay_ledger(auditor(endpoints), LedgerReplay("ledger"), out=lines.append) == 0, lines
    assert replay_audit(auditor(endpoints), AuditReplay("ledger", settle_s=30), out=lines.append) == 0, lines

    without_kek: list[str] = []
    assert replay_jobs(auditor(endpoints), JobReplay(tenant=tenant.id, settle_s=30), out=without_kek.append) == 0, without_kek
    assert "not compared: prompt (sealed; no key-encryption key was given)" in without_kek
    assert without_kek[0].endswith("into 2 jobs") and without_kek[-1] == "no differences"

    kek = kek_env(Path(endpoints.credentials_dir))["GENLINE_DATA_KEY_KEK_FILE"]
    with_kek: list[str] = []
    assert replay_jobs(auditor(endpoints, data_key_kek_file=kek), JobReplay(tenant=tenant.id, settle_s=30),
                       out=with_kek.append) == 0, with_kek
    assert not any(line.startswith("not compared") for line in with_kek)

    with psycopg.connect(endpoints.database_url, autocommit=True) as admin:  # a view changed behind its back
        [view] = admin.execute("SELECT view FROM ingest.jobs WHERE id = %s", [job_ids[0]]).fetchone()
        admin.execute("""UPDATE ingest.jobs SET view = jsonb_set(view, '{billing,charged}', '0') WHERE id = %s""",
                      [job_ids[0]])
        try:
            changed: list[str] = []
            assert replay_jobs(auditor(endpoints), JobReplay(tenant=tenant.id, settle_s=0), out=changed.append) == 1
            assert any(line.startswith(f"DIFFERENCE job={job_ids[0]} billing:") for line in changed), changed
        finally:
            admin.execute("UPDATE ingest.jobs SET view = %s WHERE id = %s", [psycopg.types.json.Jsonb(view), job_ids[0]])
