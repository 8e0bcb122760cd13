"""The scorer's worker threads, which take the waiting work of their callers in fair turns.

A scoring call hands its images to the workers at once (`map`), and several calls run side by
side: a tenant's flood of chunks, and another tenant's one-image job. A thread pool's single
queue is first come first served, so that one image waited behind every image of the calls
queued before it (a flood's chunks of 8 to 32 candidates each). Here each image waits in
`services.common.turns`' fair turns under its call's `Turn` (a job's tenant, by plan, then its
own priority): a free worker takes the image whose turn it is, so another tenant's image is
taken as soon as a worker finishes the one in hand, whatever a flood has waiting, while the
flood's own chunks still finish one after another (interleaving them would hold every one
back until all were nearly done, and the stages after scoring would wait for them together).
"""

import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from threading import Condition, Thread
from typing import Any, TypeVar

from services.common.turns import FairTurns, Turn

T = TypeVar("T")
Task = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class TakingTurns(Executor):
    """`threads` workers over tasks waiting in fair turns. A call without a turn (`submit`, or
    `map` without one) is a tenant of its own."""

    def __init__(self, threads: int, *, name: str) -> None:
        self._changed = Condition()
        self._waiting: FairTurns[Task] = FairTurns()
        self._unnamed = itertools.count()
        self._closed = False
        self._workers = [Thread(target=self._work, name=f"{name}_{n}", daemon=True) for n in range(threads)]
        for worker in self._workers:
            worker.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> "Future[T]":
        [future] = self._queued([(fn, args, kwargs)], turn=None)
        return future

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1, turn: Turn | None = None) -> Iterator[T]:
        """The results in order; the call's tasks wait in their `turn`'s place."""
        futures = self._queued([(fn, args, {}) for args in zip(*iterables, strict=False)], turn=turn)
        return (future.result(timeout) for future in futures)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._changed:
            self._closed = True
            while cancel_futures and (task := self._waiting.pop()) is not None:
                task[0].cancel()
            self._changed.notify_all()
        if wait:
            for worker in self._workers:
                worker.join()

    def _queued(self, tasks: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]], *,
                turn: Turn | None) -> list["Future[Any]"]:
        futures: list[Future[Any]] = [Future() for _ in tasks]
        with self._changed:
            if self._closed:
                raise RuntimeError("the scorer's workers are shut down")
            turn = turn or Turn(tenant=f"call {next(self._unnamed)}")
            for future, (fn, args, kwargs) in zip(futures, tasks, strict=True):
                self._waiting.push((future, fn, args, kwargs), turn)
            self._changed.notify(len(tasks))
        return futures

    def _next(self) -> Task | None:
        """The task whose turn it is; None once shut down with nothing left."""
        with self._changed:
            while not len(self._waiting):
                if self._closed:
                    return None
                self._changed.wait()
            return self._waiting.pop()

    def _work(self) -> None:
        while (task := self._next()) is not None:
            future, fn, args, kwargs = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # handed to the caller, as a thread pool does
                future.set_exception(error)
            else:
                future.set_result(result)
