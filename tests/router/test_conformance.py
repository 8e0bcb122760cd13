"""Every adapter against a simulator of its provider's published API, faults included.

One suite, parametrised over adapters × faults: each fault is played by the simulator as
its provider would play it (Replicate's 429 states its wait in the body, OpenAI says "out
of credit" with a 429 and a code, fal's safety checker drops images, BFL signs samples on
a delivery host), and each case must end in the outcome `EXPECTED` gives it, with at most
one remote job submitted, no credential arriving on a foreign host, and every job it
abandoned canceled where the API can cancel. docs/guides/providers.md prints `EXPECTED` as its
adapter × fault table; a test holds the two equal.
"""

import io
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from services.router.providers.base import GenerationRequest, ProviderContext, ProviderError
from services.router.providers.factory import build_provider
from services.router.providers.journal import MemoryJournal
from services.router.providers.registry import ProviderConfig
from tests.polling import until
from tests.router.market import SECRET, Script
from tests.router.stubs import APPS, SIZES, entry

DOCS = Path(__file__).parents[2] / "docs" / "guides" / "providers.md"
QUEUED = ("replicate", "fal", "comfyui", "bfl", "runware")
# Images fetched by URL; the provider names the URL (ComfyUI's is built from a file name).
BY_URL = ("replicate", "fal", "comfyui", "bfl", "runware", "openai-compatible")
PROVIDER_URL = tuple(a for a in BY_URL if a != "comfyui")
ONE_A_CALL = ("bfl", "stability")
# Adapters whose abandoned job the provider sees end: a cancel call, or the request closed.
CANCELS = ("replicate", "fal", "comfyui", "openai", "openai-compatible", "stability")
DEADLINE_HEADER = {"replicate": "cancel-after", "fal": "x-fal-request-timeout"}


@dataclass(frozen=True)
class Fault:
    script: Script = field(default_factory=Script)
    adapters: tuple[str, ...] = tuple(APPS)
    entry: dict = field(default_factory=dict)
    secret: str = SECRET
    # The wait a rate_limited outcome must carry.
    wait_s: float = 3


FAULTS: dict[str, Fault] = {
    "completes": Fault(),
    "poll answers 503 once": Fault(Script(poll_statuses=[503]), QUEUED),
    "poll answers 429, wait in its body": Fault(Script(poll_statuses=[429], retry_after_s=0.05, wait_in_body=True),
                                                QUEUED),
    "submit answers 429": Fault(Script(submit_status=429, retry_after_s=3)),
    "submit answers 503": Fault(Script(submit_status=503)),
    "out of credit (402, or the API's way)": Fault(Script(submit_status=402), tuple(a for a in APPS if a != "comfyui")),
    "wrong key": Fault(secret="not-the-key", adapters=tuple(a for a in APPS if a != "comfyui")),
    "job fails": Fault(Script(terminal="failed")),
    "job canceled by the provider": Fault(Script(terminal="canceled"), ("replicate", "comfyui")),
    "job aborted before it started": Fault(Script(terminal="aborted"), ("replicate",)),
    "provider-side deadline passed": Fault(Script(terminal="deadline"), ("replicate", "fal")),
    "content refused": Fault(Script(terminal="moderated"), ("fal", "bfl", "runware", "openai", "stability")),
    "some images flagged by the safety checker": Fault(Script(flagged=1), ("fal",)),
    "job fails in its own result": Fault(Script(terminal="task_error"), ("runware",)),
    "key locked out by a 429 (wait in its body)": Fault(Script(submit_status=429), ("stability",), wait_s=60),
    "server lacks the model (400 from its own check)": Fault(Script(submit_status=400), ("comfyui",)),
    "slow: past the call's deadline": Fault(Script(hang=True), entry={"overall_s": 0.3}),
    "image behind a redirect": Fault(Script(output="redirect"), PROVIDER_URL),
    "image on a foreign host": Fault(Script(output="foreign"), PROVIDER_URL),
    "image of the wrong size": Fault(Script(output="wrong_size")),
    "corrupt image bytes": Fault(Script(output="corrupt")),
    "blank image": Fault(Script(output="blank")),
    "connection lost mid-download, once": Fault(Script(output="drop_once"), BY_URL),
    "connection lost mid-download, always": Fault(Script(output="drop_always"), BY_URL),
    "image over the size cap": Fault(Script(output="too_large"), BY_URL),
    "output expired, a fresh poll gives it again": Fault(Script(output="expire_once"), BY_URL),
    "output gone for good (401/403/404 from its host)": Fault(Script(output="expire_always"), BY_URL),
}

# What each case ends in: "ok", a ProviderError kind, or "ok, images dropped".
DEFAULT = {
    "completes": "ok", "poll answers 503 once": "ok", "poll answers 429, wait in its body": "ok",
    "submit answers 429": "rate_limited", "submit answers 503": "server_error",
    "out of credit (402, or the API's way)": "unavailable", "wrong key": "credentials",
    "job fails": "server_error", "job canceled by the provider": "timeout", "job aborted before it started": "timeout",
    "provider-side deadline passed": "timeout", "content refused": "bad_request", "slow: past the call's deadline": "timeout", "image behind a redirect": "ok",
    "image on a foreign host": "ok", "image of the wrong size": "bad_output", "corrupt image bytes": "bad_output",
    "blank image": "bad_output", "connection lost mid-download, once": "ok",
    "connection lost mid-download, always": "server_error", "image over the size cap": "bad_output",
    "output expired, a fresh poll gives it again": "ok", "output gone for good (401/403/404 from its host)":
    "server_error", "some images flagged by the safety checker": "ok, images dropped",
    "job fails in its own result": "server_error", "key locked out by a 429 (wait in its body)": "rate_limited",
    "server lacks the model (400 from its own check)": "server_error",
}
# A synchronous API cannot give an output's URL again: one expired is lost.
EXCEPTIONS = {("openai-compatible", "output expired, a fresh poll gives it again"): "server_error"}
EXPECTED = {adapter: {fault: EXCEPTIONS.get((adapter, fault), DEFAULT[fault])
                      for fault, spec in FAULTS.items() if adapter in spec.adapters} for adapter in APPS}
CASES = [(adapter, fault) for adapter in APPS for fault in EXPECTED[adapter]]


def request_for(adapter: str, timeout_s: float = 2.0) -> GenerationRequest:
    width, height = SIZES.get(adapter, (512, 512))
    return GenerationRequest(job_id=uuid.uuid4().hex, attempt=1, prompt="a lighthouse", seed=100,
                             count=1 if adapter in ONE_A_CALL else 2, width=width, height=height, model="stub-model",
                             model_version="1", timeout_s=timeout_s)


def adapter_over(simulator, client, journal=None, secret: str = SECRET, **changes):
    config = ProviderConfig.model_validate({"name": f"sim-{simulator.adapter}", **entry(simulator, **changes)})
    return build_provider(config, secret=secret, context=ProviderContext(client=client, journal=journal))


async def outcome_of(provider, request: GenerationRequest):
    try:
        return "ok", await provider.generate(request)
    except ProviderError as error:
        return error.kind, error


@pytest.mark.parametrize("adapter, fault", CASES, ids=[f"{a}: {f}" for a, f in CASES])
async def test_adapter_meets_its_providers_contract(adapter, fault, simulators, client):
    simulator, spec = simulators[adapter], FAULTS[fault]
    simulator.market.reset(Script(**vars(spec.script) | {"poll_statuses": list(spec.script.poll_statuses)}))
    journal = MemoryJournal()
    provider = adapter_over(simulator, client, journal, spec.secret, **spec.entry)
    request = request_for(adapter, spec.entry.get("overall_s", 2.0))

    outcome, result = await outcome_of(provider, request)

    expected = EXPECTED[adapter][fault]
    market = simulator.market
    if expected == "ok, images dropped":
        assert outcome == "ok" and 0 < len(result) < request.count, result
    else:
        assert outcome == expected, result
    assert len(market.submissions) <= 1, "a call submitted its job more than once"
    assert market.foreign_credentials == [], "credentials went to a host that is not the provider's"
    if outcome == "ok" and result:
        assert [image.index for image in result] == list(request.indices)[: len(result)]
        for image in result:
            assert Image.open(io.BytesIO(image.data)).size == (market.submissions[0].width, market.submissions[0].height)
    if outcome == "rate_limited":
        assert result.retry_after_s == spec.wait_s
    if fault.startswith("slow"):
        abandoned(adapter, market, journal)


def abandoned(adapter: str, market, journal: MemoryJournal) -> None:
    """A job given up on is canceled where the API can, and carried a provider-side deadline where it takes one."""
    job = market.submissions[0]
    if adapter in CANCELS:
        # The simulator runs in its own thread: give it time to see a request closed.
        until(lambda: market.cancels == [job.id], 5.0, "the provider never saw the job abandoned", pause_s=0.01)
    if adapter in QUEUED:
        assert [j.state for j in journal.jobs.values()] == ["canceled" if adapter in CANCELS else "running"]
    if adapter in DEADLINE_HEADER:
        assert DEADLINE_HEADER[adapter] in job.headers


@pytest.mark.parametrize("adapter", ["replicate", "fal"])
async def test_the_provider_side_deadline_covers_the_whole_call(adapter, simulators, client):
    simulator = simulators[adapter]
    simulator.market.reset()
    await adapter_over(simulator, client, overall_s=30.0).generate(request_for(adapter, timeout_s=30.0))
    header = simulator.market.submissions[0].headers[DEADLINE_HEADER[adapter]]
    assert header == ("30s" if adapter == "replicate" else "30")


@pytest.mark.parametrize("adapter", ["fal", "bfl", "runware", "stability", "comfyui"])
async def test_seeds_are_recorded_as_the_provider_reports_them(adapter, simulators, client):
    simulator = simulators[adapter]
    simulator.market.reset()
    request = request_for(adapter)
    images = await adapter_over(simulator, client).generate(request)
    reported = {"runware": [request.batch_seed + n for n in range(request.count)]}.get(
        adapter, [request.batch_seed] * request.count)
    assert [image.seed for image in images] == reported


async def test_a_provider_that_reports_no_seed_records_none(simulators, client):
    simulator = simulators["replicate"]
    simulator.market.reset()
    images = await adapter_over(simulator, client).generate(request_for("replicate"))
    assert {image.seed for image in images} == {None}
    assert simulator.market.submissions[0].body["seed"] == 100


# What a call's deadline does at each provider, and what the router does at it: the docs'
# table, held to this suite (`abandoned` checks the cancels and the deadline headers).
_OPEN_REQUEST = ("the HTTP request's own timeout", "works while the request is open",
                 "closes the request at its deadline (the provider sees it abandoned)")
_NO_DEADLINE = ("—", "none: the task runs to its end and is paid",
                "stops waiting at its deadline; the task stays written down, so the next call for its"
                " candidates polls it")
DEADLINES = {
    "replicate": ("`Cancel-After: <s>s` (at least 5 s)", "cancels a running prediction at it (`canceled`), aborts"
                  " one not started (`aborted`)", "cancels at its deadline (`POST …/cancel`)"),
    "fal": ("`X-Fal-Request-Timeout: <s>`", "bounds only the wait for a runner: a request not started by then ends"
            " in a 504 with `X-Fal-Request-Timeout-Type: user`; a running request has no deadline",
            "cancels at its deadline (`PUT …/cancel`, which the app may ignore) and counts nothing the request"
            " returns after"),
    "comfyui": ("—", "none", "removes the prompt from the queue at its deadline and interrupts it by its"
                " `prompt_id` (not on a server with `targeted_interrupt: false`)"),
    "openai": _OPEN_REQUEST, "openai-compatible": _OPEN_REQUEST, "stability": _OPEN_REQUEST,
    "bfl": _NO_DEADLINE, "runware": _NO_DEADLINE,
}


def render_deadlines() -> str:
    return "\n".join(f"| `{adapter}` | " + " | ".join(DEADLINES[adapter]) + " |" for adapter in APPS)


def test_the_docs_say_what_a_deadline_does_at_each_provider():
    assert render_deadlines() in DOCS.read_text(), "docs/guides/providers.md's deadline table differs:\n" + \
        render_deadlines()
    assert set(DEADLINES) == set(APPS) and set(DEADLINE_HEADER) <= set(DEADLINES)


def render_table() -> str:
    """EXPECTED as docs/guides/providers.md prints it."""
    adapters = list(APPS)
    lines = ["| fault | " + " | ".join(f"`{a}`" for a in adapters) + " |",
             "|---|" + "---|" * len(adapters)]
    for fault in FAULTS:
        cells = [EXPECTED[a].get(fault, "—") for a in adapters]
        lines.append(f"| {fault} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_docs_print_this_suites_table():
    assert render_table() in DOCS.read_text(), "docs/guides/providers.md's table differs from EXPECTED:\n" + render_table()
