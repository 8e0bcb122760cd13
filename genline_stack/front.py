"""Stable addresses in front of the services' processes, as Kubernetes Services are: a TCP
proxy per service, on a port of its own, handing each new connection to the next of the
service's processes in service. A rolling replacement (ServiceFleet.replace) puts the new
process in service once it is ready and takes the old one out before stopping it, so whoever
calls the service by its address (the other services' internal calls, a client) never reaches
a process that has gone. Runs on an event loop of its own, in a thread of the fleet's process."""

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterable

from genline_stack.ports import free_port
from genline_stack.tls_proxy import passing_to


class Fronts:
    """One stable port per service, each passing connections to the ports in service behind it."""

    def __init__(self, services: Iterable[str]) -> None:
        self.ports = {service: free_port() for service in services}
        self._behind: dict[str, list[int]] = {service: [] for service in self.ports}
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="service-fronts")
        self._thread.start()
        ready.wait(timeout=10)

    def behind(self, service: str) -> list[int]:
        """The ports in service behind the service's front."""
        with self._lock:
            return list(self._behind[service])

    def put_in_service(self, service: str, port: int) -> None:
        with self._lock:
            self._behind[service].append(port)

    def take_out_of_service(self, service: str, port: int) -> None:
        with self._lock:
            self._behind[service].remove(port)

    def stop(self) -> None:
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def _next(self, service: str) -> int | None:
        with self._lock:
            behind = self._behind[service]
            return behind[next(self._turn) % len(behind)] if behind else None

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        servers = [self._loop.run_until_complete(self._loop.create_server(self._passing_to(service), "127.0.0.1", port,
                                                                          reuse_address=True))
                   for service, port in self.ports.items()]
        ready.set()
        try:
            self._loop.run_forever()
        finally:
            for server in servers:
                server.close()
            self._loop.close()

    def _passing_to(self, service: str) -> Callable[[], asyncio.Protocol]:
        return passing_to(lambda: self._next(service))
