"""Every service stops on SIGTERM within its documented grace whatever is down around it: the
broker, PostgreSQL, the object store, or all three. Jobs are in flight when the servers go, and
offsets are committed only at the stop, so each service has offsets to commit, events to relay
and connections to close that nobody answers any more; each one still says goodbye in order (its log ends with "<name> stopped"),
well before the moment it would be made to exit (STOP_GRACE_S)."""

import signal
import time

import pytest

from genline_stack.fleet import SERVICES
from genline_stack.ports import stop_process
from services.common.runtime import STOP_GRACE_S
from tests.e2e.conftest import make_tenant
from tests.test_restart import Platform

pytestmark = [pytest.mark.processes, pytest.mark.own_stack]  # starts the platform's processes and stops the stack's servers


def take_down(platform: Platform, part: str) -> None:
    """A server of the stack stopped as an operator stops it, with SIGTERM: the broker and its
    TLS front, SeaweedFS, and PostgreSQL's postmaster (a smart shutdown: no new connection, the
    open ones served until their clients leave). A server still busy after the stack's own grace
    is killed, as the stack kills it: what is held here is how the services stop, not how
    SeaweedFS does (a full run saw it take over 10 s on a loaded machine)."""
    stack = platform.stack
    if part == "postgres":
        postmaster = stack._postgres.get_postmaster_info().process
        postmaster.terminate()
        return
    for name in ("broker", "broker-tls") if part == "broker" else ("s3",):
        process = stack.servers.pop(name, None)
        if process is not None:
            stop_process(process)


def exit_times(fleet, timeout_s: float) -> dict[str, float | None]:
    """SIGTERM to every service at once; how long each took to exit (None: still running)."""
    sent = time.monotonic()
    for name in SERVICES:
        fleet.processes[name].send_signal(signal.SIGTERM)
    took: dict[str, float | None] = dict.fromkeys(SERVICES)
    while any(t is None for t in took.values()) and time.monotonic() - sent < timeout_s:
        for name in SERVICES:
            if took[name] is None and fleet.processes[name].poll() is not None:
                took[name] = time.monotonic() - sent
        time.sleep(0.1)
    return took


@pytest.mark.parametrize("down", [["broker"], ["postgres"], ["s3"], ["broker", "postgres", "s3"]],
                         ids=["broker", "postgres", "s3", "all-three"])
def test_every_service_stops_in_order_within_its_grace_whatever_is_down(tmp_path, down):
    # Offsets are committed only as each service stops, so each has some to commit then.
    platform = Platform(tmp_path / "data", fleet_env={"GENLINE_KAFKA_COMMIT_INTERVAL_MS": "600000"}, kafka_tls=True)
    try:
        fleet = platform.start()
        tenant = make_tenant(platform.endpoints, fleet, credits=10_000)
        for i in range(12):
            tenant.submit(images=2, candidates=6, seed=i)
        time.sleep(2)  # jobs on every hop: offsets noted, events in the outboxes
        for part in down:
            take_down(platform, part)
        time.sleep(3)  # each service notices: its fetches, relays and queries fail
        took = exit_times(fleet, STOP_GRACE_S + 10)
        assert all(t is not None and t < STOP_GRACE_S for t in took.values()), took
        for name in SERVICES:
            log = (fleet.log_dir / f"{name}.log").read_text()
            assert f'"{name} stopped"' in log, f"{name} did not stop in order: {log[-2000:]}"
    finally:
        platform.stop("sigkill")
