"""Time for the router: the event loop's clock, and a simulated loop that skips idle time.

The routing engine reads time only through a `Clock` (`now()`, `await sleep()`), so the
same code runs in the service on real time and in tests and the benchmark on simulated
time. `LoopClock` is the event loop's own clock; under `SimulatedEventLoop` that clock
jumps straight to the next timer whenever nothing is ready to run, so a simulated day of
sleeps, timeouts and cooldowns passes in seconds. `ManualClock` is for pure state
machines (the circuit breaker) whose tests set the time by hand.

Work handed to a thread (`asyncio.to_thread`) takes no simulated time: while any is
running the loop waits for it for real. A real socket, though, would see simulated time
race past it, so the simulated loop is for code that talks to in-process providers.
"""

import asyncio
import selectors
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, TypeVarTuple

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's monotonic clock (real or simulated)."""

    def now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            # Outside a loop (a status call from a thread) the real monotonic clock is
            # what a real loop would report.
            return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told to; `sleep` moves it by the slept time."""

    def __init__(self, start: float = 0.0) -> None:
        self.time = start

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


class _SkippingSelector(selectors.BaseSelector):
    """Wraps the loop's selector: instead of blocking until the next timer, jump to it."""

    def __init__(self, selector: selectors.BaseSelector, loop: "SimulatedEventLoop") -> None:
        self._selector = selector
        self._loop = loop

    def register(self, fileobj: "FileDescriptorLike", events: int, data: Any = None) -> selectors.SelectorKey:
        return self._selector.register(fileobj, events, data)

    def unregister(self, fileobj: "FileDescriptorLike") -> selectors.SelectorKey:
        return self._selector.unregister(fileobj)

    def get_map(self) -> "Mapping[FileDescriptorLike, selectors.SelectorKey]":
        return self._selector.get_map()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._selector.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None or self._loop.threads_running:
            # Only another thread can wake the loop now, or a thread's work is under way
            # and must finish before simulated time moves on.
            return self._selector.select(None)
        self._loop.advance(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._selector, name)


class SimulatedEventLoop(asyncio.SelectorEventLoop):
    """An event loop on simulated time that starts at `start` seconds."""

    _selector: selectors.BaseSelector  # the base loop's, not declared in its stubs

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self._simulated_now = start
        self._selector = _SkippingSelector(self._selector, self)
        self.threads_running = 0

    def time(self) -> float:
        return self._simulated_now

    def advance(self, seconds: float) -> None:
        self._simulated_now += max(0.0, seconds)

    def run_in_executor(self, executor: Executor | None, func: Callable[[*Ts], T],
                        *args: *Ts) -> "asyncio.Future[T]":
        future = super().run_in_executor(executor, func, *args)
        self.threads_running += 1
        future.add_done_callback(self._thread_finished)
        return future

    def _thread_finished(self, _future: "asyncio.Future[Any]") -> None:
        self.threads_running -= 1


def run_simulated(main: Coroutine[Any, Any, T], start: float = 0.0) -> T:
    """Run `main` to completion on a fresh `SimulatedEventLoop`."""
    with asyncio.Runner(loop_factory=lambda: SimulatedEventLoop(start)) as runner:
        return runner.run(main)
