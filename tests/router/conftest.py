"""Stub provider servers (real HTTP on 127.0.0.1), shared by the router tests."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.router.stubs import Behaviour, Stub, StubMarket, comfyui_app, fal_app, replicate_app, serve

APPS = {"fal": fal_app, "replicate": replicate_app, "comfyui": comfyui_app}


def _serve_stub(adapter: str) -> Iterator[Stub]:
    market = StubMarket()
    with serve(APPS[adapter](market)) as url:
        yield Stub(adapter, url, market)


@pytest.fixture(scope="session")
def fal_server() -> Iterator[Stub]:
    yield from _serve_stub("fal")


@pytest.fixture(scope="session")
def replicate_server() -> Iterator[Stub]:
    yield from _serve_stub("replicate")


@pytest.fixture(scope="session")
def comfyui_server() -> Iterator[Stub]:
    yield from _serve_stub("comfyui")


@pytest.fixture
def fal(fal_server: Stub) -> Stub:
    fal_server.market.reset(Behaviour())
    return fal_server


@pytest.fixture
def replicate(replicate_server: Stub) -> Stub:
    replicate_server.market.reset(Behaviour())
    return replicate_server


@pytest.fixture
def comfyui(comfyui_server: Stub) -> Stub:
    comfyui_server.market.reset(Behaviour())
    return comfyui_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as shared:
        yield shared
