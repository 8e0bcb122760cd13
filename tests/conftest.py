import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId

from genline_stack.embedded import Endpoints
from genline_stack.ports import take_share_of_ports
from services.common.grpc_server import hold_grpc_aio
from services.common.settings import ServiceSettings
from services.common.storage import ObjectStore
from tests.stacks import chosen_stack, start_stack

# Tests run gRPC servers and channels on many event loops, one after another; without this,
# freeing the last of them at the end of the session can hang pytest (see hold_grpc_aio).
hold_grpc_aio()

# Settings made in this process are the test environment's unless a test says otherwise (a
# service's own default is production; tests/common/test_settings.py checks it is).
os.environ.setdefault("GENLINE_ENVIRONMENT", "test")

# The suite's workers (pytest-xdist: gw0, gw1, ...) each start servers of their own, on ports of
# their own share, so that no two pick the same free port at once.
if "PYTEST_XDIST_WORKER" in os.environ:
    take_share_of_ports(int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw")),
                        int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))

# Tests that run a Genline service (as a process, or its runtime in this one), a browser, or
# stop and start the stack's own servers: left out of the fast lane (`make test-fast`). Every
# end-to-end test is one; elsewhere a module says so with `pytestmark = pytest.mark.processes`.
ROOT = Path(__file__).resolve().parents[1]
E2E = ROOT / "tests" / "e2e"


def pytest_addoption(parser) -> None:
    parser.addoption("--upgrade-plant", choices=("dropped-column", "events-whole", "new-event-type"), default=None,
                     help="run the rolling-upgrade test (tests/releases) with this incompatibility planted: it fails")
    parser.addoption("--upgrade-baseline", action="store_true",
                     help="run the rolling-upgrade test's stream and orders with nothing replaced: its latencies'"
                          " baseline")


# The suite runs on several workers (pytest-xdist, `--dist loadgroup`), each with a stack of its
# own, a module's tests on one worker (its module-scoped fixtures start once). The tests that
# start a stack or a fleet of their own to kill, restart or flood it (`own_stack`) are few and run
# one after another on one worker, so they never compete with each other for the cores.
@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.processes)
        if item.get_closest_marker("xdist_group") is None:
            group = "own-stack" if item.get_closest_marker("own_stack") else item.path.relative_to(ROOT).as_posix()
            item.add_marker(pytest.mark.xdist_group(group))
            if getattr(config.option, "loadgroup", False):  # on a worker of `--dist loadgroup`
                in_group(item, group)


def in_group(item: pytest.Item, group: str) -> None:
    """Names the item's group in its id, the `nodeid@group` the controller's scheduler reads.

    pytest-xdist 3.8 writes that id to `item._nodeid`, which pytest 9 no longer reads (an item's
    id is `item._id`): without this every test was a group of its own, so a module's fixtures
    started on every worker and the `own_stack` tests ran side by side.
    """
    item._id = NodeId.parse(f"{item.nodeid}@{group}")


@pytest.fixture(scope="session")
def stack_kind() -> str:
    kind, why = chosen_stack()
    if kind == "unavailable":
        pytest.skip(f"GENLINE_TEST_STACK=containers but {why}")
    return kind


@pytest.fixture(scope="session")
def session_stack(stack_kind, tmp_path_factory) -> Iterator[tuple[object, Endpoints]]:
    """The one place tests get their servers from: broker, PostgreSQL and S3."""
    stack, endpoints = start_stack(stack_kind, tmp_path_factory.mktemp("stack"))
    try:
        yield stack, endpoints
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def endpoints(session_stack) -> Endpoints:
    return session_stack[1]


def settings_for(endpoints: Endpoints, settings_class=ServiceSettings, **overrides) -> ServiceSettings:
    return endpoints.settings(settings_class, **({"environment": "test"} | overrides))


@pytest.fixture(scope="session")
def object_store(endpoints) -> ObjectStore:
    import asyncio

    store = ObjectStore(settings_for(endpoints))
    asyncio.run(store.ensure_buckets())
    return store
