"""Background tasks that never die silently: relays, watchers, sweepers, schedulers.

A task started with `supervise` runs its coroutine again whenever it raises: the error is
logged with its traceback, counted in `genline_background_task_failures_total{task}`, and
the coroutine starts afresh after a backoff that doubles up to a ceiling (with jitter, so
replicas that failed together do not retry together) and falls back to its floor once a run
has lasted a while. A coroutine that returns has finished its work; cancelling the task
stops it. `every` is the loop of periodic work under the same rule, one failed round at a time.

What a process's tasks wait on, on demand: `kill -USR1 <pid>` logs each asyncio task of the
service with the chain of calls it is suspended in (`waiting_tasks`), for a job that stands
still with no error to say why (Go's SIGQUIT, Java's thread dump). It costs nothing until asked.

    task = supervise("ingest-sweeper", sweeper.run_forever)
    ...
    await stop_tasks(task)
"""

import asyncio
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import CoroutineType
from typing import Any

from prometheus_client import Counter

from services.common import telemetry

log = logging.getLogger(__name__)

BACKGROUND_FAILURES = Counter("genline_background_task_failures_total",
                              "Failures of a service's background tasks (each one logged, then retried)", ["task"])
RESTART_BACKOFF_S = 0.5
RESTART_BACKOFF_MAX_S = 30.0
# A run that lasted this long was healthy: the next failure waits the floor again.
HEALTHY_RUN_S = 60.0


def failed(task: str) -> None:
    """Log the exception being handled and count it against `task`."""
    BACKGROUND_FAILURES.labels(task).inc()
    log.exception("background task %s failed", task)


@dataclass(frozen=True)
class Backoff:
    """How long a failed task waits before it runs again: from `floor_s`, doubling, at most `ceiling_s`."""

    floor_s: float = RESTART_BACKOFF_S
    ceiling_s: float = RESTART_BACKOFF_MAX_S

    def wait_s(self, failures_in_a_row: int) -> float:
        """The wait after this many failures in a row, with ±50 % jitter."""
        return float(min(self.ceiling_s, self.floor_s * 2 ** (failures_in_a_row - 1)) * (0.5 + random.random()))


async def _supervised(name: str, run: Callable[[], Awaitable[object]], *, backoff: Backoff) -> None:
    in_a_row = 0
    while True:
        started = time.monotonic()
        try:
            await run()
            return
        except Exception:
            failed(name)
        in_a_row = 1 if time.monotonic() - started >= HEALTHY_RUN_S else in_a_row + 1
        await asyncio.sleep(backoff.wait_s(in_a_row))


def supervise(name: str, run: Callable[[], Awaitable[object]], *, backoff: Backoff = Backoff()) -> asyncio.Task[None]:
    """Run `run()` in a task named `name`, again after a `backoff` whenever it raises."""
    BACKGROUND_FAILURES.labels(name)  # at zero from the start, so the first failure is an increase
    return asyncio.create_task(_supervised(name, run, backoff=backoff), name=name)


async def every(interval_s: float, tick: Callable[[], Awaitable[object]], *, what: str) -> None:
    """Call `tick` forever, `interval_s` apart: a sweeper's loop. A failed call is logged and
    counted, and the next one comes as usual. Its statements are counted as `what`'s."""
    BACKGROUND_FAILURES.labels(what)
    while True:
        try:
            with telemetry.counted_for(what):
                await tick()
        except Exception:
            failed(what)
        await asyncio.sleep(interval_s)


async def stop_tasks(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel these tasks and wait until each has ended."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


# Each goodbye in a service's stop (the last commit of offsets, a producer's flush, the broker's
# and the database's connections closed) is given this long: with the broker or PostgreSQL
# gone, each would otherwise retry for ever, and a pod would wait out its whole grace.
GOODBYE_S = 2


async def goodbye(what: str, step: Awaitable[object]) -> None:
    """One step of a stop that talks to a server which may be gone: given GOODBYE_S, then left."""
    try:
        await asyncio.wait_for(step, GOODBYE_S)
    except TimeoutError:
        log.warning("%s did not close in %ss (is its server away?); stopping without", what, GOODBYE_S)
    except Exception as exc:
        log.warning("%s did not close (%s: %s); stopping without", what, type(exc).__name__, exc)


def waiting_tasks(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Each task of `loop`, named, with where it is suspended: its coroutine's frame, then the
    frame of each coroutine it awaits, down to what the last one awaits (a future or a task:
    `Future`)."""
    lines = []
    for task in sorted(asyncio.all_tasks(loop), key=lambda task: task.get_name()):
        chain: list[str] = []
        awaited: Any = task.get_coro()
        while isinstance(awaited, CoroutineType):
            frame = awaited.cr_frame
            if frame is not None:
                chain.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})")
            awaited = awaited.cr_await
        if awaited is not None:  # a future's or a task's iterator (`FutureIter`), or a generator
            chain.append(type(awaited).__name__.removesuffix("Iter"))
        lines.append(f"task {task.get_name()} waits in " + " -> ".join(chain))
    return lines


def log_waiting_tasks_on_signal(loop: asyncio.AbstractEventLoop, signum: int = signal.SIGUSR1) -> None:
    """On `signum`, log what every task of `loop` waits on (`waiting_tasks`), one line each."""
    def log_them() -> None:
        lines = waiting_tasks(loop)
        for line in lines:
            log.warning("%s", line)
        log.warning("%d tasks listed", len(lines))

    loop.add_signal_handler(signum, log_them)
