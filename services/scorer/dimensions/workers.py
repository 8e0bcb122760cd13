"""The scorer's worker threads, which take the waiting work of their callers in turns.

A scoring call hands its images to the workers at once (`map`), and several calls run side by
side: a tenant's flood of chunks, and another tenant's one-image job. A thread pool's single
queue is first come first served, so that one image waited behind every image of the calls
queued before it (a flood's chunks of 8 to 32 candidates each). Here the calls of one `turn`
(a tenant) wait in one queue, first come first served among themselves, and a free worker
takes the next task of the next turn in rotation: another tenant's image is taken as soon as
a worker finishes the image in hand, whatever a flood has waiting, while the flood's own
chunks still finish one after another (interleaving them would hold every one back until
all were nearly done, and the stages after scoring would wait for them together).
"""

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from threading import Condition, Thread
from typing import Any, TypeVar

T = TypeVar("T")
Task = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class TakingTurns(Executor):
    """`threads` workers over one queue of tasks per turn, served one task a turn in rotation.
    A call without a turn (`submit`, or `map` without one) is a turn of its own."""

    def __init__(self, threads: int, *, name: str) -> None:
        self._changed = Condition()
        self._turns: dict[object, deque[Task]] = {}  # the tasks waiting, by turn, in rotation order
        self._closed = False
        self._workers = [Thread(target=self._work, name=f"{name}_{n}", daemon=True) for n in range(threads)]
        for worker in self._workers:
            worker.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> "Future[T]":
        [future] = self._queued([(fn, args, kwargs)], turn=object())
        return future

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1, turn: object = None) -> Iterator[T]:
        """The results in order; the call's tasks wait behind those of its `turn`, taking turns
        with other turns' tasks."""
        futures = self._queued([(fn, args, {}) for args in zip(*iterables, strict=False)],
                               turn=object() if turn is None else turn)
        return (future.result(timeout) for future in futures)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._changed:
            self._closed = True
            if cancel_futures:
                for tasks in self._turns.values():
                    for future, *_ in tasks:
                        future.cancel()
                self._turns.clear()
            self._changed.notify_all()
        if wait:
            for worker in self._workers:
                worker.join()

    def _queued(self, tasks: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]], *,
                turn: object) -> list["Future[Any]"]:
        futures: list[Future[Any]] = [Future() for _ in tasks]
        if not tasks:
            return futures
        with self._changed:
            if self._closed:
                raise RuntimeError("the scorer's workers are shut down")
            self._turns.setdefault(turn, deque()).extend(
                (future, fn, args, kwargs) for future, (fn, args, kwargs) in zip(futures, tasks, strict=True))
            self._changed.notify(len(tasks))
        return futures

    def _next(self) -> Task | None:
        """The next turn's next task (that turn then waits behind the others); None once shut
        down with nothing left."""
        with self._changed:
            while not self._turns:
                if self._closed:
                    return None
                self._changed.wait()
            turn, tasks = next(iter(self._turns.items()))
            task = tasks.popleft()
            del self._turns[turn]
            if tasks:  # to the back of the rotation
                self._turns[turn] = tasks
            return task

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
