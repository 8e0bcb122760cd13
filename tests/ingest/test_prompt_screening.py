"""Prompt screening's rules (pure) and the hosted moderation adapter against a real HTTP
server answering in OpenAI's published moderation shape, faults included."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from services.ingest.accounts.moderation import Breaker, HostedModeration, ModerationUnavailable, flagged_category
from services.ingest.prompt_rules import OperatorRule, PromptRule, screen

# The shape of POST /v1/moderations in OpenAI's API reference (omni-moderation), abridged.
FLAGGED = {"id": "modr-970d409ef3bef3b70c73d8232df86e7d", "model": "omni-moderation-latest", "results": [{
    "flagged": True,
    "categories": {"sexual": False, "sexual/minors": False, "harassment": False, "harassment/threatening": False,
                   "hate": False, "hate/threatening": False, "illicit": False, "illicit/violent": False,
                   "self-harm": False, "self-harm/intent": False, "self-harm/instructions": False,
                   "violence": True, "violence/graphic": False},
    "category_scores": {"violence": 0.86, "sexual": 0.0001},
    "category_applied_input_types": {"violence": ["text"], "sexual": ["text"]}}]}
CLEAN = {"id": "modr-1", "model": "omni-moderation-latest", "results": [{"flagged": False, "categories": {
    "violence": False}, "category_scores": {"violence": 0.01}}]}


def test_terms_match_whole_words_in_any_case_and_patterns_each_word():
    tenant = [PromptRule(category="competitors", terms=["acme corp"], patterns=["glob?x*"])]
    operator = [OperatorRule(category="weapons", terms=["rifle"], patterns=[r"\bguns?\b"])]
    assert screen("A RIFLE at dawn", operator, tenant=tenant).category == "weapons"
    assert screen("two guns", operator, tenant=tenant).source == "operator"
    assert screen("riflescope photography", operator, tenant=tenant) is None
    assert screen("logo for Acme  Corp", operator, tenant=tenant) is None  # a phrase is matched as written
    assert screen("logo for acme corp, blue", operator, tenant=tenant).category == "competitors"
    assert screen("the globex tower", operator, tenant=tenant).source == "tenant"
    assert screen("a red bicycle", operator, tenant=tenant) is None


def test_a_tenants_pattern_is_a_wildcard_not_a_regular_expression():
    with pytest.raises(ValueError):
        PromptRule(category="x", patterns=["[a-z]+"])
    with pytest.raises(ValueError):
        OperatorRule(category="x", patterns=["(unclosed"])
    evil = PromptRule(category="x", patterns=["*a*a*a*a*b"])
    assert screen("a" * 2000, [], tenant=[evil]) is None  # judged on words of at most 64 characters


def test_a_flagged_answer_names_its_first_true_category():
    assert flagged_category(FLAGGED) == "violence"
    assert flagged_category(CLEAN) is None
    with pytest.raises(ModerationUnavailable):
        flagged_category({"error": {"message": "nope"}})


class Provider:
    """An HTTP server answering POST /v1/moderations from a script, counting calls."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict]] = []
        self.bodies: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                provider.bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                status, body = provider.answers[min(len(provider.bodies), len(provider.answers)) - 1]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/moderations"


@pytest.fixture
def provider():
    served = Provider()
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_the_adapter_asks_the_provider_and_its_breaker_opens_after_failures(provider):
    provider.answers = [(200, FLAGGED), (200, CLEAN), (500, {"error": {"message": "down"}}), (500, {})]
    clock = [0.0]
    breaker = Breaker(failures=2, cooldown_s=30, clock=lambda: clock[0])

    async def run():
        async with httpx.AsyncClient() as http:
            adapter = HostedModeration(http=http, url=provider.url, api_key="sk-test", model="omni-moderation-latest", timeout_s=2.0, breaker=breaker)
            outcomes = [await adapter.category_of("a knife fight"), await adapter.category_of("a bicycle")]
            for _ in range(3):
                with pytest.raises(ModerationUnavailable):
                    await adapter.category_of("a bicycle")
            return outcomes

    assert asyncio.run(run()) == ["violence", None]
    assert len(provider.bodies) == 4  # the fifth call met the open breaker, not the provider
    assert provider.bodies[0] == {"model": "omni-moderation-latest", "input": "a knife fight"}
    clock[0] = 31.0
    assert breaker.allows()


@pytest.fixture(scope="module")
def ingest_settings(endpoints):
    import uuid

    from services.ingest.settings import IngestSettings

    return endpoints.settings(IngestSettings, environment="test", schema_name=f"prompts_{uuid.uuid4().hex[:8]}")


def test_the_gate_refuses_by_rule_or_moderation_and_a_down_provider_follows_the_tenants_policy(ingest_settings,
                                                                                               provider):
    from services.common.problems import Problem
    from services.ingest.accounts.prompt_screening import PromptGate, TenantScreening, write_screening
    from services.ingest.accounts.tenants import Tenant, create_tenant, tenants_transaction

    provider.answers = [(200, FLAGGED), (200, CLEAN), (503, {}), (503, {})]

    async def outcomes() -> list[str]:
        await create_tenant(ingest_settings, Tenant("closed-tenant"))
        await create_tenant(ingest_settings, Tenant("open-tenant"))
        async with tenants_transaction(ingest_settings) as conn:
            await write_screening(conn, "closed-tenant", screening=TenantScreening(
                [PromptRule(category="competitors", terms=["globex"])], "fail_closed"))
        from services.common.runtime import ServiceRuntime

        runtime = ServiceRuntime("ingest", ingest_settings, migrations_package="services.ingest")
        await runtime.pool.open(wait=True)
        seen = []
        async with httpx.AsyncClient() as http:
            adapter = HostedModeration(http=http, url=provider.url, api_key=None, model="omni-moderation-latest", timeout_s=2.0, breaker=Breaker(failures=5, cooldown_s=30))
            gate = PromptGate([OperatorRule(category="weapons", terms=["rifle"])], "fail_open", moderation=adapter)
            for tenant, prompt in [("closed-tenant", "a rifle"), ("closed-tenant", "the globex tower"),
                                   ("closed-tenant", "a knife fight"), ("closed-tenant", "a bicycle"),
                                   ("closed-tenant", "a bicycle"), ("open-tenant", "a bicycle")]:
                try:
                    await gate.check(runtime.pool, tenant, prompt=prompt)
                    seen.append("accepted")
                except Problem as problem:
                    seen.append(f"{problem.status} {problem.extra.get('category', problem.slug)}")
        await runtime.pool.close()
        return seen

    assert asyncio.run(outcomes()) == ["422 weapons", "422 competitors", "422 violence", "accepted",
                                       "503 prompt-screening-unavailable", "accepted"]
    assert [body["input"] for body in provider.bodies] == ["a knife fight", "a bicycle", "a bicycle", "a bicycle"]
