"""Stopping what a program started, whatever stops it. Python's default for SIGTERM ends the
process at once, skipping every `finally`: a bench, the launcher or a tool that had started the
stack's servers and the services left them all running with no parent. Under
`stopped_by_signals()`, SIGTERM and SIGINT raise `Stop` in the main thread instead, so the
`finally` blocks that stop the fleet and the stack run; what they do runs under `signals_held()`,
so that a signal that comes while they stop things (a second one, or the first one after a
normal end) does not cut the stop short.

    def main():
        stack, fleet = ...
        try:
            ...
        finally:
            with signals_held():
                fleet.stop_all()
                stack.stop()

    if __name__ == "__main__":
        run_stoppable(main)   # exits 128 + the signal's number once everything is stopped
"""

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stop(KeyboardInterrupt):
    """A signal to stop. A KeyboardInterrupt, so that no `except Exception` on the way takes it
    for a failure and carries on, and so that asyncio passes it on from wherever in an event
    loop it is raised (any other exception raised in a callback is only logged there)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise `Stop` while the block runs; after the first, the others are
    ignored, so that the stop itself is not cut short. The previous handlers come back after."""
    def stop(signum: int, _frame: FrameType | None) -> None:
        for each in SIGNALS:
            signal.signal(each, signal.SIG_IGN)
        raise Stop(signum)

    with handlers(stop):
        yield


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT ignored while the block stops what was started; as they were after."""
    with handlers(signal.SIG_IGN):
        yield


@contextmanager
def handlers(handler: Callable[[int, FrameType | None], object] | int) -> Iterator[None]:
    previous = {each: signal.signal(each, handler) for each in SIGNALS}
    try:
        yield
    finally:
        for each, before in previous.items():
            signal.signal(each, before)


def run_stoppable(main: Callable[[], object]) -> None:
    """A program's `main` under `stopped_by_signals`; stopped by a signal, the process exits
    128 + its number, as a shell reports it, once `main`'s `finally` blocks have run."""
    with stopped_by_signals():
        try:
            main()
        except Stop as stop:
            print(f"{stop}: stopped", file=sys.stderr, flush=True)
            sys.exit(128 + stop.signum)
