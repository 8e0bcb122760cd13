"""The local provider: LocalGenerator behind the provider interface, on simulated time."""

import pytest

from services.router.clock import LoopClock, run_simulated
from services.router.providers.base import GenerationRequest, ProviderContext, ProviderError
from services.router.providers.local.painter import CandidateRange, LocalGenerator
from services.router.providers.local.provider import LocalProvider
from services.router.providers.registry import ProviderConfig


def config(**local) -> ProviderConfig:
    return ProviderConfig.model_validate({
        "name": "local-test", "adapter": "local", "models": [{"name": "painter", "version": "1"}],
        "capabilities": {"min_side": 16}, "price": {"per_image_micro_usd": 4_000}, "concurrency": 2,
        "latency": {"base_s": 3.0, "per_image_s": 1.0}, "local": {"defect_rate": 0.25} | local,
    })


def request(job_id: str = "job", count: int = 4, start_index: int = 0, timeout_s: float = 60) -> GenerationRequest:
    return GenerationRequest(job_id=job_id, attempt=1, prompt="a harbour", seed=11, count=count, width=48, height=48,
                             model="painter", model_version="1", start_index=start_index, timeout_s=timeout_s)


def test_local_provider_paints_what_the_generator_paints_after_its_latency():
    async def scenario():
        clock = LoopClock()
        images = await LocalProvider(config(), ProviderContext(clock=clock)).generate(request(start_index=2))
        return images, clock.now()

    images, elapsed = run_simulated(scenario())
    painted = LocalGenerator(48, 48, defect_rate=0.25).paint(CandidateRange(prompt="a harbour", seed=11, count=4, start_index=2))
    assert [i.data for i in images] == [p.png for p in painted]
    assert [i.index for i in images] == [2, 3, 4, 5]
    assert elapsed == pytest.approx(3.0 + 4 * 1.0)
    assert all(i.cost_micro_usd == 4_000 and i.latency_s == pytest.approx(7.0) for i in images)


def test_failures_are_deterministic_and_near_the_configured_rate():
    provider = LocalProvider(config(failure_rate=0.3, latency_s=0))

    async def outcomes():
        results = []
        for n in range(200):
            try:
                await provider.generate(request(job_id=f"job-{n}", count=1))
                results.append(True)
            except ProviderError as error:
                assert error.kind == "server_error"
                results.append(False)
        return results

    first, second = run_simulated(outcomes()), run_simulated(outcomes())
    assert first == second
    assert 0.2 < first.count(False) / len(first) < 0.4


def test_slower_than_the_timeout_is_a_timeout_at_the_timeout():
    async def scenario():
        clock = LoopClock()
        with pytest.raises(ProviderError) as raised:
            await LocalProvider(config(latency_s=100), ProviderContext(clock=clock)).generate(request(timeout_s=30))
        return raised.value.kind, clock.now()

    assert run_simulated(scenario()) == ("timeout", 30)


def test_unknown_model_is_a_bad_request():
    async def scenario():
        bad = GenerationRequest(job_id="j", attempt=1, prompt="p", seed=1, count=1, width=48, height=48,
                                model="painter", model_version="2")
        await LocalProvider(config()).generate(bad)

    with pytest.raises(ProviderError, match="no model"):
        run_simulated(scenario())
