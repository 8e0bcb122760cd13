"""The five services as separate processes: start, wait until ready, kill, restart, stop."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from genline_stack.endpoints import Endpoints
from genline_stack.front import Fronts
from genline_stack.ports import free_port, stop_process

SERVICES = ("ledger", "router", "scorer", "delivery", "ingest")
ADMIN_SERVICES = ("ingest", "ledger")
CHECKOUT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, kw_only=True)
class Build:
    """The code a service process runs: a source tree, the Python that runs it (with its
    packages) and settings of its own (an older release's provider registry, say), as a
    release's image and ConfigMap carry them. This checkout by default; a release installed
    beside it (tests/releases/installed.py) runs two releases side by side, as a rolling
    update does."""

    python: str = sys.executable
    root: Path = CHECKOUT
    env: dict[str, str] = field(default_factory=dict)


THIS_CHECKOUT = Build()


@dataclass(eq=False, kw_only=True)
class ServiceFleet:
    """`namespace` gives this fleet topics and schemas of its own (`<namespace>_<service>`),
    so it can share a broker and a database with another fleet without either seeing the
    other's events. With `admin_ports` the admin APIs of ingest and the ledger answer on
    ports of their own only, as in production, not on the public ones. With `fronted` each
    service has a stable address in front of its processes, as a Kubernetes Service
    (front.py), which the services call one another by: its processes can then be replaced
    one at a time (`replace`) as a rolling update does."""

    endpoints: Endpoints
    log_dir: Path
    ingest_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None
    admin_ports: bool = False
    fronted: bool = False
    fronts: Fronts | None = field(init=False, default=None)
    ports: dict[str, int] = field(init=False)
    admin_port_of: dict[str, int] = field(init=False)
    ledger_grpc_port: int = field(init=False, default_factory=free_port)
    router_grpc_port: int = field(init=False, default_factory=free_port)
    # Settings for one service only (e.g. a delivery that cannot reach its bucket), by name.
    service_env: dict[str, dict[str, str]] = field(init=False, default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(init=False, default_factory=dict)
    # The build each process runs (THIS_CHECKOUT unless started with another), by process name.
    builds: dict[str, Build] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in SERVICES}
        if self.ingest_port:
            self.ports["ingest"] = self.ingest_port
        self.admin_port_of = {name: free_port() for name in ADMIN_SERVICES} if self.admin_ports else {}
        if self.fronted:
            if self.admin_ports:
                raise ValueError("fronted services answer their admin APIs on their one port")
            self.fronts = Fronts(SERVICES)
            self.fronts.start()

    @property
    def ingest_url(self) -> str:
        return self.address("ingest")

    def url(self, name: str) -> str:
        """Where process `name` (`ingest`, `ingest#2`) answers."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def address(self, service: str) -> str:
        """Where the service answers whichever of its processes serves: its front, if it has one."""
        return self.fronts.url(service) if self.fronts else self.url(service)

    def admin_url(self, name: str) -> str:
        """Where the service's admin API answers: its admin port, or its only one."""
        if name in self.admin_port_of:
            return f"http://127.0.0.1:{self.admin_port_of[name]}"
        return self.address(name) if name in SERVICES else self.url(name)

    def env(self, name: str) -> dict[str, str]:
        name, process = service_of(name), name
        build = self.builds.get(process, THIS_CHECKOUT)
        root = build.root
        return os.environ | self.endpoints.service_env(name) | {
            "GENLINE_HTTP_PORT": str(self.ports[process]),
            "GENLINE_SERVICE_NAME": name,
            "PYTHONPATH": str(root),
            "GENLINE_GRPC_PORT": str(self.ledger_grpc_port),
            "GENLINE_LEDGER_GRPC_TARGET": f"127.0.0.1:{self.ledger_grpc_port}",
            "GENLINE_ROUTER_GRPC_TARGET": f"127.0.0.1:{self.router_grpc_port}",
            "GENLINE_SCORER_URL": self.address("scorer"),
            "GENLINE_DELIVERY_URL": self.address("delivery"),
            "GENLINE_LEDGER_URL": self.address("ledger"),
            # Ingest's internal data-key API, for the services that open sealed prompts.
            "GENLINE_DATA_KEY_URL": self.admin_url("ingest"),
            # Webhooks may go to this machine (receivers on a laptop, in tests); still no
            # other private address.
            "GENLINE_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8", "::1/128"]',
            # The documentation site `make docs` builds, which ingest serves at /docs/.
            "GENLINE_DOCS_DIR": str(root / "site"),
        } | (self._own_grpc_port(name) | self._admin_port(process) | self._isolation(name) | self.extra_env
             | build.env | self.service_env.get(name, {}) | self.service_env.get(process, {}))

    def schema(self, name: str) -> str:
        return f"{self.namespace}_{name}" if self.namespace else name

    def _isolation(self, name: str) -> dict[str, str]:
        if not self.namespace:
            return {}
        return {"GENLINE_TOPIC_NAMESPACE": self.namespace, "GENLINE_SCHEMA_NAME": self.schema(name)}

    def _admin_port(self, name: str) -> dict[str, str]:
        return {"GENLINE_ADMIN_PORT": str(self.admin_port_of[name])} if name in self.admin_port_of else {}

    def _own_grpc_port(self, name: str) -> dict[str, str]:
        return {"GENLINE_GRPC_PORT": str(self.router_grpc_port)} if name == "router" else {}

    def start(self, name: str, build: Build | None = None) -> None:
        """Start process `name` on `build` (the one it ran before, else this checkout)."""
        self.builds[name] = build or self.builds.get(name, THIS_CHECKOUT)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            [self.builds[name].python, "-m", f"services.{service_of(name)}"], env=self.env(name), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=self.builds[name].root,  # `-m` looks in cwd first
        )

    def start_replica(self, name: str, env: dict[str, str] | None = None, *, build: Build | None = None) -> str:
        """One more process of service `name`, on a port of its own, sharing the service's
        schema, topics and consumer group, as a second pod would, with `env` on top of the
        service's settings, on `build` (this checkout unless given: another release's pod in
        a rolling update); returns its process name (`ingest#2`), to pass to `url`, `kill` or `stop`."""
        replica = f"{name}#{max((replica_number(p) for p in self.ports if service_of(p) == name), default=1) + 1}"
        self.ports[replica], self.service_env[replica] = free_port(), env or {}
        self.start(replica, build or THIS_CHECKOUT)
        self.wait_ready(replica)
        return replica

    def replace(self, process: str, build: Build) -> str:
        """Process `process` replaced by one of `build`, as a rolling update replaces a pod
        (`maxSurge: 1, maxUnavailable: 0`): the new one started and, once ready, in service;
        then the old one out of service and stopped (SIGTERM, its drain). The new one's name."""
        replica = self.start_replica(service_of(process), build=build)
        self.stop(process)
        return replica

    def stop(self, name: str) -> None:
        """Stop process `name`, out of service first; a service keeps its port for a restart,
        a replica is gone."""
        self._out_of_service(name)
        stop_process(self.processes.pop(name), grace_s=20)
        if name not in SERVICES:
            self.ports.pop(name)
            self.service_env.pop(name, None)
            self.builds.pop(name, None)

    def start_all(self, timeout_s: float = 120) -> None:
        for name in SERVICES:
            self.start(name)
        for name in SERVICES:
            self.wait_ready(name, timeout_s)

    def wait_ready(self, name: str, timeout_s: float = 120) -> None:
        deadline, last = time.monotonic() + timeout_s, "no answer"
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir / (name + '.log')}")
            try:
                response = httpx.get(f"{self.url(name)}/readyz", timeout=2)
                if response.status_code == 200:
                    self._in_service(name)
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout_s}s ({last}); see {self.log_dir / (name + '.log')}")

    def _in_service(self, name: str) -> None:
        if self.fronts is not None and self.ports[name] not in self.fronts.behind(service_of(name)):
            self.fronts.put_in_service(service_of(name), self.ports[name])

    def _out_of_service(self, name: str) -> None:
        if self.fronts is not None and self.ports[name] in self.fronts.behind(service_of(name)):
            self.fronts.take_out_of_service(service_of(name), self.ports[name])

    def kill(self, name: str) -> None:
        """SIGKILL: no drain, no goodbye, as a crash would (and out of service, as its failing
        probe would take it)."""
        self._out_of_service(name)
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    @contextmanager
    def paused(self, name: str) -> Iterator[None]:
        """SIGSTOP until the block ends, then SIGCONT: a service that hangs and holds its work
        (jobs wait in the state before it) without losing it."""
        process = self.processes[name]
        process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            process.send_signal(signal.SIGCONT)

    def restart(self, name: str) -> None:
        self.start(name)
        self.wait_ready(name)

    def crashed(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def stop_all(self) -> None:
        """SIGTERM to every process at once, then each one waited for (SIGKILL after 20 s):
        each drains on its own, so none waits for another's drain."""
        running = [process for process in self.processes.values() if process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            stop_process(process, grace_s=20)
        if self.fronts is not None:
            self.fronts.stop()


def service_of(process: str) -> str:
    """`ingest#2` (a replica) → `ingest`."""
    return process.split("#")[0]


def replica_number(process: str) -> int:
    """`ingest#2` → 2; a service's first process (`ingest`) is 1."""
    return int(process.split("#")[1]) if "#" in process else 1
