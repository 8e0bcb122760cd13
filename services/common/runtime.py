"""What every service process has: database pool and migrations, broker, outbox relay,
consumer, ops endpoints, and an orderly start and stop (SIGTERM drains)."""

import asyncio
import contextlib
import faulthandler
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import FrameType
from typing import TypeVar

import psycopg
import uvicorn
from faststream.kafka import KafkaBroker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common import telemetry, tracing
from services.common.bus.consumer import EventConsumer
from services.common.bus.consumption import Consumption
from services.common.bus.envelope import Envelope, envelop
from services.common.bus.journal import Journal
from services.common.bus.journal_tables import ServiceSchema
from services.common.bus.kafka_security import faststream_security
from services.common.bus.outbox import OutboxRelay, OutboxRow, add_to_outbox, outbox_row
from services.common.bus.writing import EventWriter
from services.common.contracts import PUBLISHERS, Event, consumer_group, readers_of, topic_of
from services.common.db import COMMON_MIGRATIONS, Conn, migrate, open_pool, ping
from services.common.grpc_server import hold_grpc_aio
from services.common.problems import Problem, problem_response
from services.common.releases import RELEASE
from services.common.settings import ServiceSettings
from services.common.supervision import GOODBYE_S, goodbye, log_waiting_tasks_on_signal

log = logging.getLogger(__name__)

# How long a stopping service waits, at most, for requests in flight (uvicorn) and then for
# its outbox to drain; Deployments give pods more than the sum (tests/deploy checks it).
HTTP_DRAIN_S = 20
OUTBOX_DRAIN_S = 15
GRPC_DRAIN_S = 5
# A service exits this long after SIGTERM whatever is still stopping (the operations guide's
# "55 s at worst": HTTP 20, gRPC 5, the router's attempts 15, the outbox 15). Its outbox and
# its remote jobs are written down, so what it had not finished is taken up by the next one.
STOP_GRACE_S = 55
S = TypeVar("S", bound=ServiceSettings)


class ServiceRuntime:
    def __init__(self, name: str, settings: ServiceSettings, *, migrations_package: str | None) -> None:
        # `service` is what it is (ingest); `name` its schema, which a namespace may prefix.
        self.service, self.name, self.settings = name, settings.schema_name or name, settings
        self.migrations = [COMMON_MIGRATIONS] + ([migrations_package] if migrations_package else [])
        self.database_url = settings.database_url.get_secret_value()
        self.pool = open_pool(self.database_url, self.name, size=settings.database_pool_size)
        # Its producer sends only dead letters: acknowledged by every in-sync replica, once.
        # The consumer's handlers take the fetched batch as it is (consumer.as_fetched).
        self.broker = KafkaBroker(settings.kafka_bootstrap, logger=logging.getLogger("faststream"), apply_types=False,
                                  security=faststream_security(settings), acks="all",
                                  enable_idempotence=settings.kafka_idempotent_producer)
        self.schema = ServiceSchema(name=self.name, pool=self.pool, database_url=self.database_url, settings=settings)
        self.journal = self._journal()
        self.relay = OutboxRelay(self.schema, self.journal)
        self.consumer = EventConsumer(self.schema, self.relay)
        self.readiness_checks: dict[str, Callable[[], Awaitable[None]]] = {"database": self._ping_database}
        # The outbox holds what the service publishes while the broker is away: it stays ready.
        self.reported_checks: dict[str, Callable[[], Awaitable[None]]] = {"broker": self._ping_broker}
        # Extra servers and loops a service runs beside its consumer (gRPC, sweepers).
        self.startup_hooks: list[Callable[[], Awaitable[None]]] = []
        self.shutdown_hooks: list[Callable[[], Awaitable[None]]] = []
        telemetry.BUILD_INFO.labels(name, RELEASE, settings.events_compatible_with).set(1)

    @property
    def writer(self) -> EventWriter:
        """How this service writes its events (bus/writing.py): the consumer's, for every emit."""
        return self.consumer.writer

    @property
    def about(self) -> dict[str, str]:
        """What `/healthz` says of the process: its service, release, and the release it writes
        its events for."""
        return {"service": self.service, "version": RELEASE,
                "events_compatible_with": self.settings.events_compatible_with}

    def consume(self, consumption: Consumption) -> None:
        """Subscribe to the topics `consumption` reads (in this runtime's topic namespace), with
        the handlers registered on its consumer; a declaration that leaves a type on those
        topics without a branch, or that its handlers do not match, raises Unbranched."""
        self.consumer.attach(self.broker, consumption)
        # A journal's floor vouches only for the groups its contract names (journal_of): on
        # another service's topic, this inbox forgets below the floor only if it is one.
        self.consumer.inbox_floors.topics = {topic_of(publisher, self.settings.topic_namespace)
                                             for publisher in consumption.publishers
                                             if self.service in readers_of(publisher) and self.name.endswith(self.service)}

    def consume_topics(self, publishers: Iterable[str]) -> None:
        """Subscribe to these services' topics, passing over whatever the consumer has no
        handler for (tests and tools; a service declares what it consumes, `consume`)."""
        self.consume(Consumption.passing_over_the_rest(self.service, publishers, handled=self.consumer.registered()))

    async def start(self) -> None:
        applied = await migrate(self.database_url, self.name, packages=self.migrations)
        if applied:
            log.info("applied migrations %s", applied)
        await self.pool.open(wait=True)
        await self.broker.start()
        self.consumer.start_waking(self.database_url)
        self.consumer.inbox_floors.start_pruning()
        self.consumer.start_applying_held()
        self.relay.start()
        self.relay.notify()  # publish what a previous run committed but did not relay
        for hook in self.startup_hooks:
            await hook()
        log.info("%s started", self.name)

    async def stop(self) -> None:
        """Stop in order, each step within its own time and all of them within what is left of
        the service's grace (`STOP_CLOCK`): with the broker or the database gone every step
        waits out its time, and the drains alone would outlast the grace."""
        await self.consumer.stop_applying()
        for hook in reversed(self.shutdown_hooks):
            await STOP_CLOCK.within("stopping " + getattr(hook, "__qualname__", "a part"), hook())
        await self.relay.stop(STOP_CLOCK.left(OUTBOX_DRAIN_S))  # drains the outbox first
        await goodbye("the last commit of offsets", self.consumer.offsets.flush())
        await self.consumer.end_watch.stop()
        await self.consumer.inbox_floors.stop_pruning()
        await self.consumer.stop_applying_held()
        if self.consumer.waker:
            await self.consumer.waker.stop()
        await goodbye("the broker's connections", self.broker.stop())
        await goodbye("the database's connections", self.pool.close(timeout=GOODBYE_S))
        log.info("%s stopped", self.name)

    async def emit(self, conn: Conn, event: Event) -> Envelope:
        """Add an event to the outbox inside the caller's transaction; call `relay.notify()`
        after the commit."""
        envelope = envelop(event, f"/genline/{self.name}")
        await add_to_outbox(conn, envelope, writer=self.writer)
        return envelope

    def outbox_row(self, event: Event) -> OutboxRow:
        """`emit`'s outbox row, for a statement of the caller's to add (bus.staged_event)."""
        return outbox_row(envelop(event, f"/genline/{self.name}"), self.writer)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def _journal(self) -> Journal:
        """The service's outbox as its journal. A service owns its topic, and the groups of the
        services reading it are named after its schema's prefix (`<namespace>_ledger` beside
        `<namespace>_router`); an outbox named otherwise owns no topic and rotates none."""
        service, schema, namespace = self.service, self.name, self.settings.topic_namespace
        if service not in PUBLISHERS or not schema.endswith(service):
            return Journal(self.schema)
        prefix = schema.removesuffix(service)
        readers = tuple(consumer_group(namespace, prefix + reader) for reader in readers_of(service))
        return Journal(self.schema, topic_of(service, namespace), readers=readers)

    async def _ping_database(self) -> None:
        # Asked twice: the first may meet a connection the database dropped when it restarted,
        # which the pool discards; the database answering a new one is what readiness means.
        for last in (False, True):
            try:
                async with self.pool.connection(timeout=2) as conn:
                    await ping(conn)
                return
            except psycopg.OperationalError:
                if last:
                    raise

    async def _ping_broker(self) -> None:
        if not await self.broker.ping(timeout=2):
            raise ConnectionError("Kafka broker does not answer")


def ops_app(runtime: ServiceRuntime) -> Starlette:
    """The HTTP face of a worker service: health, readiness and metrics."""
    app = Starlette(routes=telemetry.ops_routes(runtime.readiness_checks, runtime.reported_checks, about=runtime.about),
                    lifespan=runtime.lifespan)
    telemetry.instrument_http(app, runtime.settings.service_name)
    return app


def build_worker(consumption: Consumption, settings: ServiceSettings, *,
                 register: Callable[..., None]) -> tuple[ServiceRuntime, Starlette]:
    """A worker service that handles the events it declares it consumes and reads or writes
    object storage; `register(consumer, objects, settings)` adds its handlers."""
    from services.common.storage import ObjectStore

    name = consumption.service
    runtime = ServiceRuntime(name, settings, migrations_package=f"services.{name}")
    objects = ObjectStore(settings)
    runtime.readiness_checks["object_store"] = objects.ping
    runtime.shutdown_hooks.append(objects.aclose)
    register(runtime.consumer, objects, settings)
    runtime.consume(consumption)
    return runtime, ops_app(runtime)


def listen(host: str, ports: Iterable[int]) -> list[socket.socket]:
    """Listening sockets for one HTTP app on several ports (the ledger's admin port)."""
    sockets: list[socket.socket] = []
    for port in ports:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


class OpsPort:
    """With an ops port, probes and /metrics answer there only, and nothing else does (404)."""

    def __init__(self, app: ASGIApp, ops_port: int | None) -> None:
        self.app, self.ops_port = app, ops_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ops_port and scope["type"] == "http":
            on_ops_port = (scope.get("server") or (None, None))[1] == self.ops_port
            if on_ops_port != (scope["path"] in telemetry.OPS_PATHS):
                response = problem_response(Request(scope), Problem(status=404, slug="not-found", detail="no such resource on this port"))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class StopClock:
    """How long a stopping service has left: STOP_GRACE_S from the signal to stop, less what its
    last goodbyes may take (GOODBYES_S: the outbox's journal and producer, the last commit of
    offsets, the broker's and the database's connections), so that every step of
    `ServiceRuntime.stop` ends within the grace. Past the grace the process exits whatever is
    still stopping."""

    GOODBYES_S = 5 * GOODBYE_S

    def __init__(self) -> None:
        self.signalled_at: float | None = None

    def start(self, grace_s: float = STOP_GRACE_S) -> None:
        if self.signalled_at is not None:
            return
        self.signalled_at = time.monotonic()
        timer = threading.Timer(grace_s, exit_now, args=(grace_s,))
        timer.daemon = True
        timer.start()

    def left(self, budget_s: float) -> float:
        """`budget_s`, or less where the grace ends sooner (at least a moment)."""
        if self.signalled_at is None:
            return budget_s
        ends = self.signalled_at + STOP_GRACE_S - self.GOODBYES_S
        return max(0.5, min(budget_s, ends - time.monotonic()))

    async def within(self, what: str, step: Awaitable[object]) -> None:
        try:
            await asyncio.wait_for(step, self.left(STOP_GRACE_S))
        except TimeoutError:
            log.warning("%s went past the grace; stopping without it", what)


STOP_CLOCK = StopClock()


def exit_now(grace_s: float) -> None:
    log.error("still stopping %ss after the signal to stop: exiting", grace_s)
    logging.shutdown()
    os._exit(1)


class Server(uvicorn.Server):
    """uvicorn's server, which on SIGTERM or SIGINT also starts the stop clock; and whose main
    loop wakes when something is due: uvicorn's wakes ten times a second to look for a signal
    (and every tenth time writes the Date header anew), a service's busiest timer when idle.
    Here it wakes each second for the header, and at once on a signal."""

    _woken: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        STOP_CLOCK.start()
        super().handle_exit(sig, frame)
        if self._woken is not None:  # in a signal handler: the loop is told the way asyncio's own are
            loop, woken = self._woken
            loop.call_soon_threadsafe(woken.set)

    async def main_loop(self) -> None:
        woken = asyncio.Event()
        self._woken = (asyncio.get_running_loop(), woken)
        log_waiting_tasks_on_signal(asyncio.get_running_loop())
        ticks = 0  # uvicorn's count, ten a second: on_tick writes the header when it is a whole second
        while not await self.on_tick(ticks):
            ticks = (ticks + 10) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), 1.0)


def serve(app: ASGIApp, settings: ServiceSettings) -> None:
    # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from any peer on 127.0.0.1
    # (a sidecar) as the client; the services read it only from the proxies an operator names.
    config = uvicorn.Config(OpsPort(app, settings.ops_port), log_config=None, access_log=False,
                            timeout_graceful_shutdown=HTTP_DRAIN_S, proxy_headers=False)
    Server(config).run(sockets=listen(settings.http_host, settings.http_ports()))


# The cyclic collector's youngest generation is examined after this many allocations (700
# by default). A consumer allocates thousands of short-lived objects per batch, acyclic
# nearly all; at 700 the collections and the older ones they trigger took a fifth of the
# ledger's CPU per event (bench/ledger.py), at 10,000 they are rare and cheap.
YOUNG_GENERATION_THRESHOLD = 10_000


def tune_collector() -> None:
    """For a service process: collect the young generation less often, and exempt what
    start-up created (modules, settings, schemas) from every later full collection."""
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
    gc.freeze()


def run(settings_class: type[S], build: Callable[[S], tuple[object, ASGIApp]]) -> None:
    """`python -m services.<name>`: settings from the environment, then serve until SIGTERM.
    SIGUSR2 writes every thread's Python stack to stderr (the log), even while the event loop
    is stuck in a call; SIGUSR1 logs where each task waits (`Server.main_loop`)."""
    faulthandler.register(signal.SIGUSR2, all_threads=True)
    settings = settings_class()
    telemetry.configure_logging(settings.service_name, settings.log_level, redact_prompts=settings.redact_prompts)
    tracing.configure_tracing(settings.service_name, settings.otlp_endpoint)
    hold_grpc_aio()
    _, app = build(settings)
    tune_collector()
    serve(app, settings)
