"""Simulators of the providers' APIs (real HTTP on 127.0.0.1), shared by the router tests:
one per adapter for the whole session, each with a foreign host beside it; a test gets
its simulator with a fresh market."""

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.router.market import Market
from tests.router.stubs import APPS, Provider, serve, simulated
from tests.router.video_apis import fal_video_app, replicate_video_app


@pytest.fixture(scope="session")
def simulators() -> Iterator[dict[str, Provider]]:
    with ExitStack() as stack:
        yield {name: stack.enter_context(simulated(name)) for name in APPS}


@pytest.fixture(scope="session")
def video_simulators() -> Iterator[dict[str, Provider]]:
    """fal's queue and Replicate's predictions running video models (video_apis.py)."""
    with ExitStack() as stack:
        found = {}
        for adapter, app in (("fal", fal_video_app), ("replicate", replicate_video_app)):
            market = Market()
            found[adapter] = Provider(adapter, stack.enter_context(serve(app(market))), market)
        yield found


def _fresh(simulators: dict[str, Provider], name: str) -> Provider:
    simulators[name].market.reset()
    return simulators[name]


@pytest.fixture
def fal(simulators) -> Provider:
    return _fresh(simulators, "fal")


@pytest.fixture
def replicate(simulators) -> Provider:
    return _fresh(simulators, "replicate")


@pytest.fixture
def comfyui(simulators) -> Provider:
    return _fresh(simulators, "comfyui")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as shared:
        yield shared
