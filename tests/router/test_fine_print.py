"""The providers' fine print, each read as the provider's own documentation and client read it
(sources in tests/router/fixtures/README.md): an expired output is not a wrong key, a
deadline the provider cannot enforce is enforced here, and each API's own words for its
errors, formats and namespaces."""

import asyncio
from dataclasses import replace

import pytest

from services.router.engine import RoutingEngine
from services.router.providers.base import ProviderContext, ProviderError
from services.router.providers.copies import BucketCopies
from services.router.providers.factory import build_provider, build_providers
from services.router.providers.fal.queue import app_id
from services.router.providers.journal import MemoryJournal
from services.router.providers.registry import ProviderConfig, parse_registry
from services.router.routing_types import RoutingPolicy
from tests.polling import until
from tests.router.market import SECRET, Script
from tests.router.stubs import STUB_SECRET, entry, stub_provider
from tests.router.test_conformance import adapter_over, request_for
from tests.router.test_engine_faults import BREAKER, RETRY, job, status_of

# Generous timeouts where a test is not about time: painting 1024² images takes a while on a busy machine.
SLACK = {"submit_s": 10, "overall_s": 30, "poll_backoff_max_s": 0.2}


# ---- 1. an output's host refusing it is an expired output, never a wrong key -------------


def expiring_replicate_first(client, replicate, fal) -> RoutingEngine:
    registry = parse_registry({"providers": {
        "replicate": stub_provider(replicate, price=10_000, overall_s=5.0),
        "fal": stub_provider(fal, price=30_000, overall_s=5.0),
    }})
    return RoutingEngine(registry, build_providers(registry, {"STUB_KEY": STUB_SECRET}, context=ProviderContext(client=client)),
                         policy=RoutingPolicy(breaker=BREAKER, retry=RETRY))


async def test_an_expired_output_loses_the_call_but_not_the_providers_key(replicate, fal, client):
    engine = expiring_replicate_first(client, replicate, fal)
    replicate.market.reset(Script(output="expire_always"))
    first = await engine.route(job(images=1))
    assert first.providers_used[-1] == "fal"
    assert [call.outcome for call in first.calls if call.provider == "replicate"][0] == "server_error"
    assert status_of(engine, "replicate").state == "closed"
    # The lost job was billed all the same: its cost is on record.
    assert [call.actual_cost_micro_usd for call in first.calls if call.provider == "replicate"][0] > 0

    replicate.market.reset()  # answering normally again
    second = await engine.route(job(images=1))
    assert second.providers_used == ("replicate",)


async def test_a_resumed_job_takes_the_copy_of_its_outputs_not_their_urls(replicate, client, object_store):
    journal, copies = MemoryJournal(), BucketCopies(object_store)
    config = ProviderConfig.model_validate({"name": "sim-replicate", **entry(replicate) | {
        "timeouts": SLACK}})
    context = ProviderContext(client=client, journal=journal, copies=copies)
    request = request_for("replicate", timeout_s=30.0)
    fetched = await build_provider(config, secret=SECRET, context=context).generate(request)
    [key] = journal.jobs
    assert journal.jobs[key].state == "succeeded"
    assert (await copies.get(key)).images == tuple((i.data, i.media_type, i.seed) for i in fetched)

    # The router died before the attempt stored the images; an hour on, the outputs are gone.
    replicate.market.script.output = "expire_always"
    downloads = sum(replicate.market.downloads.values())
    resumed = await build_provider(config, secret=SECRET, context=context).generate(request)
    assert [image.data for image in resumed] == [image.data for image in fetched]
    assert sum(replicate.market.downloads.values()) == downloads and len(replicate.market.submissions) == 1


# ---- 2. Together's response_format is base64 | url ---------------------------------------


async def test_an_openai_compatible_model_of_the_usual_inputs_is_answered(simulators, client):
    simulator = simulators["openai-compatible"]
    simulator.market.reset()
    provider = adapter_over(simulator, client, model={"remote_id": "black-forest-labs/FLUX.1-schnell"})
    images = await provider.generate(request_for("openai-compatible"))
    assert len(images) == 2 and "response_format" not in simulator.market.submissions[0].body


# ---- 3. fal's X-Fal-Request-Timeout bounds only the wait for a runner ---------------------


async def test_a_running_fal_request_is_ended_here_at_the_calls_deadline(fal, client):
    fal.market.reset(Script(hang=True))  # started at once, never finishes: fal's deadline does not apply
    journal = MemoryJournal()
    with pytest.raises(ProviderError) as ended:
        await adapter_over(fal, client, journal, overall_s=1.0).generate(request_for("fal", timeout_s=1.0))
    [request] = fal.market.submissions
    assert ended.value.kind == "timeout"
    assert request.headers["x-fal-request-timeout"] == "2"  # fal refuses one second or less
    until(lambda: fal.market.cancels == [request.id], 5.0, "fal never saw the request canceled", pause_s=0.01)
    # Written down as canceled: nothing it returns later is ever polled for or counted.
    assert [state.state for state in journal.jobs.values()] == ["canceled"]


# ---- 7. fal's 504 with X-Fal-Request-Timeout-Type: user is the request's own timeout -------


async def test_fals_user_timeout_ends_the_call_at_once_and_is_not_polled_again(fal, client):
    fal.market.reset(Script(terminal="deadline"))
    journal = MemoryJournal()
    provider = adapter_over(fal, client, journal, overall_s=5.0)
    with pytest.raises(ProviderError) as ended:
        await asyncio.wait_for(provider.generate(request_for("fal", timeout_s=5.0)), 4.0)
    assert ended.value.kind == "timeout" and ended.value.terminal
    assert fal.market.cancels == [] and [job.state for job in journal.jobs.values()] == ["failed"]


# ---- 5. Runware: a task's own error ends the wait, as the SDK's does ---------------------


@pytest.mark.parametrize("terminal, kind", [("task_error", "server_error"), ("moderated", "bad_request")])
async def test_a_runware_tasks_error_in_its_result_ends_the_wait(terminal, kind, simulators, client):
    simulator = simulators["runware"]
    simulator.market.reset(Script(terminal=terminal))
    with pytest.raises(ProviderError) as failed:
        await asyncio.wait_for(adapter_over(simulator, client, overall_s=5.0).generate(request_for("runware", 5.0)),
                               4.0)
    assert failed.value.kind == kind and failed.value.terminal


# ---- 6. Stability's 429 locks the key out for 60 seconds ---------------------------------


async def test_stabilitys_lockout_is_waited_out(simulators, client):
    simulator = simulators["stability"]
    simulator.market.reset(Script(submit_status=429))
    with pytest.raises(ProviderError) as limited:
        await adapter_over(simulator, client).generate(request_for("stability"))
    assert limited.value.kind == "rate_limited" and limited.value.retry_after_s == 60


# ---- 8. ComfyUI: a server without the workflow's model is the server's defect -------------


async def test_a_comfyui_server_without_the_checkpoint_counts_against_it(comfyui, client):
    comfyui.market.reset(Script(submit_status=400))
    with pytest.raises(ProviderError) as refused:
        await adapter_over(comfyui, client).generate(request_for("comfyui"))
    assert refused.value.kind == "server_error" and refused.value.counts_against_health


# ---- 9. OpenAI's token usage is the bill; fal's namespaced apps keep their namespace ------


async def test_a_long_prompt_costs_what_its_tokens_bill(simulators, client):
    simulator = simulators["openai"]
    simulator.market.reset()
    config = ProviderConfig.model_validate({"name": "sim-openai", **entry(simulator) | {"price": {
        "per_image_by_size": {"1024x1024": 11_000}, "per_text_input_token_micro_usd": 5,
        "per_output_token_micro_usd": 40}, "timeouts": SLACK}})
    provider = build_provider(config, secret=SECRET, context=ProviderContext(client=client))
    short = await provider.generate(request_for("openai", 30.0))
    long_request = replace(request_for("openai", 30.0), prompt="a lighthouse " * 400)
    long = await provider.generate(long_request)
    assert sum(i.cost_micro_usd for i in long) - sum(i.cost_micro_usd for i in short) == \
        5 * (len(long_request.prompt) // 4 - len("a lighthouse") // 4)


@pytest.mark.parametrize("endpoint, app", [
    ("fal-ai/flux/dev", "fal-ai/flux"), ("fal-ai/flux-pro", "fal-ai/flux-pro"),
    ("workflows/acme/upscale-pipeline", "workflows/acme/upscale-pipeline"),
    ("workflows/acme/upscale-pipeline/fast", "workflows/acme/upscale-pipeline"),
    ("comfy/acme/portrait", "comfy/acme/portrait"),
])
def test_fal_app_ids_keep_their_namespace(endpoint, app):
    assert app_id(endpoint) == app
