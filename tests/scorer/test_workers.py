"""The scorer's workers take their callers' tasks in turns: a call of one image is not kept
behind the whole of a larger call queued before it."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from services.common.turns import Turn
from services.scorer.dimensions.workers import TakingTurns


@contextmanager
def one_worker_held() -> Iterator[tuple[TakingTurns, Callable[[], None]]]:
    """A pool of one worker kept busy until the caller lets it go, so that what the caller
    queues meanwhile waits, and is then taken in the pool's order."""
    pool = TakingTurns(1, name="test")
    gate, started = threading.Event(), threading.Event()

    def held() -> None:
        started.set()
        gate.wait(10)

    busy = pool.submit(held)
    started.wait(10)
    try:
        yield pool, gate.set
        busy.result(10)
    finally:
        gate.set()
        pool.shutdown()


def test_a_call_of_one_task_is_taken_next_not_after_a_larger_call_queued_before_it():
    ran: list[str] = []
    with one_worker_held() as (pool, release):
        flood = pool.map(lambda n: ran.append(f"flood {n}") or n, range(10))
        other = pool.map(lambda n: ran.append("other") or n, [0])
        release()
        assert list(flood) == list(range(10)) and list(other) == [0]
    # First come first served would run it eleventh; in turns it runs after one of the flood's.
    assert ran.index("other") == 1, ran


def test_results_come_in_order_and_an_error_reaches_its_caller():
    pool = TakingTurns(2, name="test")
    try:
        assert list(pool.map(lambda a, b: a * b, range(20), range(20))) == [n * n for n in range(20)]

        def broken(n):
            if n == 3:
                raise ValueError("image 3 cannot be decoded")
            return n

        results = pool.map(broken, range(5))
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError, match="image 3"):
            next(results)
    finally:
        pool.shutdown()


def test_a_shut_down_pool_takes_no_more_work_and_its_workers_end():
    pool = TakingTurns(2, name="test")
    assert pool.submit(lambda: 7).result(10) == 7
    pool.shutdown()
    assert not any(worker.is_alive() for worker in pool._workers)
    with pytest.raises(RuntimeError):
        pool.submit(lambda: 1)


def test_the_calls_of_one_turn_finish_one_after_another_while_another_turn_cuts_in():
    ran: list[str] = []
    with one_worker_held() as (pool, release):
        first = pool.map(lambda n: ran.append(f"first {n}"), range(3), turn=Turn(tenant="flood"))
        second = pool.map(lambda n: ran.append(f"second {n}"), range(3), turn=Turn(tenant="flood"))
        other = pool.map(lambda n: ran.append(f"other {n}"), range(2), turn=Turn(tenant="another tenant"))
        release()
        list(first), list(second), list(other)
    flood = [entry for entry in ran if not entry.startswith("other")]
    assert flood == ["first 0", "first 1", "first 2", "second 0", "second 1", "second 2"], ran
    assert ran.index("other 0") == 1 and ran.index("other 1") == 3, ran
