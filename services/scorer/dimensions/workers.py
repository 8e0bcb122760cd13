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

The scorer's workers give way (`gives_way`): each runs as a niced batch thread, so a flood's
scoring never keeps the services' event loops (the scorer's own, the router's, delivery's,
ingest's, on a shared node) from the CPU. And one spare worker (`spare_lane`), at the
service's own priority, takes the image of a tenant with nothing else being scored while the
others are busy: it neither waits for the flood's images in hand nor is scored at their lower
priority. A flood, always with images being scored, never uses it.
"""

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from threading import Condition, Thread
from typing import Any, TypeVar

from services.common.turns import FairTurns, Turn
from services.common.worker_processes import yield_to_services

T = TypeVar("T")
Task = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any], str]  # ..., its tenant


class TakingTurns(Executor):
    """`threads` workers over tasks waiting in fair turns. A call without a turn (`submit`, or
    `map` without one) is a tenant of its own."""

    def __init__(self, threads: int, *, name: str, gives_way: bool = False, spare_lane: bool = False) -> None:
        self._changed = Condition()
        self._waiting: FairTurns[Task] = FairTurns()
        self._unnamed = itertools.count()
        self._closed = False
        self._threads, self._busy = threads, 0
        self._running: Counter[str] = Counter()  # tasks of each tenant being run
        self._workers = [Thread(target=self._work, kwargs={"spare": False, "gives_way": gives_way},
                                name=f"{name}_{n}", daemon=True) for n in range(threads)]
        if spare_lane:
            self._workers.append(Thread(target=self._work, kwargs={"spare": True, "gives_way": False},
                                        name=f"{name}_spare", daemon=True))
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
                self._waiting.push((future, fn, args, kwargs, turn.tenant), turn)
            self._changed.notify_all()
        return futures

    def _next(self, *, spare: bool) -> Task | None:
        """The task whose turn it is (for the spare worker: of a tenant with nothing being run,
        while every other worker is busy); None once shut down with nothing left."""
        with self._changed:
            while True:
                task = self._take(spare=spare)
                if task is not None:
                    self._running[task[4]] += 1
                    if not spare:
                        self._busy += 1
                        if len(self._waiting):  # every worker may be busy now: the spare looks again
                            self._changed.notify_all()
                    return task
                if self._closed and (spare or not len(self._waiting)):
                    return None
                self._changed.wait()

    def _take(self, *, spare: bool) -> Task | None:
        if not spare:
            return self._waiting.pop()
        if self._busy < self._threads:
            return None
        return self._waiting.pop(only=lambda tenant: not self._running[tenant])

    def _done(self, task: Task, *, spare: bool) -> None:
        with self._changed:
            self._running[task[4]] -= 1
            if not self._running[task[4]]:
                del self._running[task[4]]
            self._busy -= 0 if spare else 1
            self._changed.notify_all()

    def _work(self, *, spare: bool, gives_way: bool) -> None:
        if gives_way:
            yield_to_services()  # on Linux, this thread only
        while (task := self._next(spare=spare)) is not None:
            future, fn, args, kwargs, _ = task
            try:
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = fn(*args, **kwargs)
                except BaseException as error:  # handed to the caller, as a thread pool does
                    future.set_exception(error)
                else:
                    future.set_result(result)
            finally:
                self._done(task, spare=spare)
