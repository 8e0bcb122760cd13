"""Operator tokens with scopes and the audit trail, on the running ledger: who may do what,
every admin action recorded with its actor, other services' actions kept from their topics,
and `genline replay audit` rebuilding the trail."""

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from services.common.bus.envelope import envelop
from services.common.contracts import AuditRecorded, topic_of
from services.ledger.audit_replay import AuditReplay, replay_audit
from services.ledger.settings import LedgerSettings
from tests.kafka import publish_envelopes
from tests.ledger.conftest import served_ledger, served_ledger_settings

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes

TOKENS = {"finance": "finance-token-5c1e9a7d20", "support": "support-token-8b3f61e4c2",
          "auditor": "auditor-token-2d7a0c9f51"}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def operator_tokens() -> dict:
    """finance grants, support manages tenants, the auditor reads the trail (given by hash)."""
    return {"finance": {"token": TOKENS["finance"], "scopes": ["credits:grant"]},
            "support": {"token": TOKENS["support"], "scopes": ["tenants:manage"]},
            "auditor": {"token_sha256": hashlib.sha256(TOKENS["auditor"].encode()).hexdigest(),
                        "scopes": ["audit:read", "billing:read"]}}


@pytest.fixture(scope="module")
def settings(endpoints) -> LedgerSettings:
    return served_ledger_settings(endpoints, admin_token=None, admin_tokens=operator_tokens())


@pytest.fixture(scope="module")
async def http(settings):
    async with served_ledger(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


def tenant() -> str:
    return f"acct-{uuid.uuid4().hex[:10]}"


async def trail(http: httpx.AsyncClient, **filters) -> list[dict]:
    response = await http.get("/admin/v1/audit", params=filters, headers=bearer("auditor"))
    assert response.status_code == 200, response.text
    return response.json()["entries"]


async def test_each_operator_does_what_its_scopes_allow_and_nothing_else(http):
    buyer = tenant()
    granted = await http.post("/admin/v1/grants", json={"tenant_id": buyer, "credits": 40}, headers=bearer("finance"))
    audit_by_finance = await http.get("/admin/v1/audit", headers=bearer("finance"))
    grant_by_auditor = await http.post("/admin/v1/grants", json={"tenant_id": buyer, "credits": 40},
                                       headers=bearer("auditor"))
    unknown = await http.get("/admin/v1/audit", headers={"Authorization": "Bearer not-an-operator-token-at-all"})
    reconciliation = await http.get("/admin/v1/reconciliation", headers=bearer("auditor"))

    assert granted.status_code == 201, granted.text
    assert audit_by_finance.status_code == 403
    assert audit_by_finance.headers["content-type"] == "application/problem+json"
    assert audit_by_finance.json()["type"] == "/problems/missing-scope"
    assert audit_by_finance.json()["scope"] == "audit:read"
    assert grant_by_auditor.status_code == 403 and grant_by_auditor.json()["scope"] == "credits:grant"
    assert unknown.status_code == 401 and unknown.json()["type"] == "/problems/invalid-admin-token"
    assert reconciliation.status_code == 200, reconciliation.text


async def test_the_trail_shows_each_admin_action_with_its_actor_and_filters(http):
    buyer, started = tenant(), datetime.now(UTC) - timedelta(seconds=1)
    granted = await http.post("/admin/v1/grants", json={"tenant_id": buyer, "credits": 25, "reason": "pilot"},
                              headers=bearer("finance"))
    policy = await http.put(f"/admin/v1/accounts/{buyer}/report-policy", json={"report_policy": "retry_token"},
                            headers=bearer("support"))
    assert (granted.status_code, policy.status_code) == (201, 200), (granted.text, policy.text)

    entries = await trail(http, tenant_id=buyer)

    assert [(e["action"], e["actor"], e["target"]) for e in entries] == [
        ("report_policy.set", "operator:support", f"tenant:{buyer}"),
        ("credits.grant", "operator:finance", f"tenant:{buyer}")]
    assert entries[0]["details"] == {"report_policy": "retry_token", "previous": "refund"}
    assert entries[1]["details"]["credits"] == 25 and entries[1]["details"]["reason"] == "pilot"
    assert entries[1]["details"]["grant_id"] == granted.json()["grant_id"]
    assert all(e["service"] == "ledger" and datetime.fromisoformat(e["at"]) >= started for e in entries)
    by_support = await trail(http, actor="operator:support", action="report_policy.set")
    assert buyer in {e["tenant_id"] for e in by_support}
    assert {e["actor"] for e in by_support} == {"operator:support"}
    assert await trail(http, tenant_id=buyer, since=(datetime.now(UTC) + timedelta(minutes=1)).isoformat()) == []


async def test_a_refused_action_leaves_no_trail(http):
    nobody = tenant()
    response = await http.put(f"/admin/v1/accounts/{nobody}/report-policy", json={"report_policy": "refund"},
                              headers=bearer("support"))

    assert response.status_code == 404
    assert await trail(http, tenant_id=nobody) == []


async def test_another_service_s_actions_are_kept_from_its_topic_and_the_replay_matches(http, settings):
    """What ingest records (a key revoked) reaches the trail through ingest's topic; the
    replay rebuilds the same trail from the topics, and finds a tampered entry."""
    buyer = tenant()
    revoked = AuditRecorded(service="ingest", actor="key:k_1f2e", action="api_key.revoke", target="api_key:k_9a8b",
                            tenant_id=buyer, details={"name": "ci"}, at=datetime.now(UTC))
    envelope = envelop(revoked, "/genline/ingest")
    await publish_envelopes(settings.kafka_bootstrap, [envelope, envelope],
                            lambda e: topic_of("ingest", settings.topic_namespace))
    await http.post("/admin/v1/grants", json={"tenant_id": buyer, "credits": 5}, headers=bearer("finance"))

    entries = []
    for _ in range(100):
        entries = await trail(http, tenant_id=buyer)
        if len(entries) == 2:
            break
        await asyncio.sleep(0.2)
    assert sorted((e["service"], e["action"], e["actor"]) for e in entries) == [
        ("ingest", "api_key.revoke", "key:k_1f2e"), ("ledger", "credits.grant", "operator:finance")]

    lines: list[str] = []
    assert await asyncio.to_thread(replay_audit, settings, AuditReplay(settings.schema_name, "topics", 10), out=lines.append) == 0, lines
    assert lines[-1] == "no differences"
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        conn.execute(f'UPDATE "{settings.schema_name}".audit_log SET actor = %s WHERE event_id = %s',
                     ["operator:someone-else", envelope.id])
    lines.clear()
    assert await asyncio.to_thread(replay_audit, settings, AuditReplay(settings.schema_name, "topics", 0), out=lines.append) == 1
    assert f"DIFFERENCE entry={envelope.id} actor: live='operator:someone-else' replayed='key:k_1f2e'" in lines


@pytest.mark.parametrize("tokens", [
    {"ops": {"token": "CHANGE_ME", "scopes": ["*"]}},
    {"ops": {"token_sha256": hashlib.sha256(b"changeme").hexdigest(), "scopes": ["audit:read"]}},
    {"ops": {"token": "short-token", "scopes": ["audit:read"]}},
])
def test_a_placeholder_operator_token_refuses_startup(endpoints, tokens):
    env = os.environ | endpoints.service_env() | {"GENLINE_ENVIRONMENT": "test",
                                                  "GENLINE_ADMIN_TOKENS": json.dumps(tokens)}
    started = subprocess.run([sys.executable, "-m", "services.ledger"], env=env, capture_output=True, text=True,
                             timeout=120)

    assert started.returncode != 0
    assert "GENLINE_ADMIN_TOKENS['ops']" in started.stderr
