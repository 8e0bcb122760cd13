"""The scorer's workers take their callers' tasks in turns: a call of one image is not kept
behind the whole of a larger call queued before it."""

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from services.common.turns import Turn
from services.common.worker_processes import WORKER_NICENESS
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


def test_another_tenant_takes_the_spare_worker_at_once_while_a_flood_holds_the_others():
    pool = TakingTurns(1, name="test", spare_lane=True)
    gate, started = threading.Event(), threading.Event()
    try:
        def flood_image(n: int) -> str:
            started.set()
            gate.wait(10)
            return threading.current_thread().name

        flood = pool.map(flood_image, range(4), turn=Turn(tenant="flood"))
        started.wait(10)
        [where] = pool.map(lambda n: threading.current_thread().name, [0], turn=Turn(tenant="other"), timeout=5)
        assert where == "test_spare" and not gate.is_set(), "scored while the flood's image was still in hand"
        gate.set()
        assert set(flood) == {"test_0"}, "the flood, always with an image being scored, never takes the spare"
    finally:
        gate.set()
        pool.shutdown()


def test_the_workers_give_way_and_the_spare_keeps_the_services_priority():
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def priority(_: int) -> tuple[str, int, int]:
        thread = threading.get_native_id()
        return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, thread), os.sched_getscheduler(thread)

    pool = TakingTurns(1, name="test", gives_way=True, spare_lane=True)
    gate = threading.Event()
    try:
        held = pool.submit(gate.wait, 10)
        [spare] = pool.map(priority, [0], turn=Turn(tenant="other"), timeout=5)
        gate.set()
        held.result(5)
        [worker] = pool.map(priority, [0], timeout=5)
    finally:
        gate.set()
        pool.shutdown()
    assert worker[0] == "test_0" and (worker[1] >= base + WORKER_NICENESS or worker[1] == 19)
    assert worker[2] == os.SCHED_BATCH
    assert spare == ("test_spare", base, os.sched_getscheduler(0))


def test_a_scorer_on_the_cpu_spreads_images_not_operations_over_the_cores():
    """Its workers each take an image; OpenCV's and torch's own pools, as wide as the
    machine, would run inside each of them and contend for the same cores."""
    import cv2
    import torch

    from services.scorer.dimensions import Equipment, Scorer

    before = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(2)
    try:
        with Scorer(Equipment(device=torch.device("cpu"), threads=2)):
            assert (cv2.getNumThreads(), torch.get_num_threads()) == (1, 1)
    finally:
        cv2.setNumThreads(before[0])
        torch.set_num_threads(before[1])
