"""The local provider's paintings, made in worker processes: its plain pictures and its
portraits of a subject.

The local provider stands in for a provider's machines, and its paintings are the heaviest
CPU work in the router: made in the router's threads, they took the interpreter from its
event loop, so under a flood every other job's scheduling, storing and publishing waited
behind them (another tenant's one-image job spent 1.9 s of its 2.4 s generating hop outside
its own painting). Here they are made in a pool of worker processes, one per core, that give
way to the services (`services.common.worker_processes`: niced batch processes, each ending
itself once the router is gone), as a provider's own machines would take nothing from them.

The paintings wait for a worker in fair turns (`services.common.turns.FairPlaces`, by the
turn the router gives the call, `CALL_TURN`): a provider may take more calls at once than
there are workers, and another tenant's painting is then made next, not after every painting
a flood's calls queued before it. And one spare worker, at the router's own priority, paints
at once for a tenant with nothing else being painted while the others are busy (`PlacesAndSpare`,
as delivery's rendering does): its painting neither waits for the flood's in hand nor is made
at their lower priority.

A worker that dies breaks the pool: a new one is started and the painting tried again once.
"""

import asyncio
import functools
import logging
import multiprocessing
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from services.common.turns import PlacesAndSpare, Turn
from services.common.worker_processes import keep_priority_of, one_thread_each, watch_owner, yield_to_services
from services.router.providers.base import CALL_TURN
from services.router.providers.local.painter import CandidateRange, LocalGenerator, PaintedCandidate
from services.router.providers.local.portraits.painter import Sitting, paint_portrait

log = logging.getLogger(__name__)
T = TypeVar("T")

_lock = threading.Lock()
_pools: dict[bool, ProcessPoolExecutor] = {}  # this process's pools by lane (the spare one: True), once started
_places_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PlacesAndSpare]" = weakref.WeakKeyDictionary()


def _workers() -> int:
    return len(os.sched_getaffinity(0))


def _start_worker(owner: int, gives_way: bool) -> None:
    if gives_way:
        yield_to_services()
    else:
        keep_priority_of(owner)
    one_thread_each()  # numpy's and OpenCV's BLAS are loaded: the forkserver preloads this module
    watch_owner(owner)


@functools.lru_cache(maxsize=32)
def _generator(width: int, height: int, *, defect_rate: float) -> LocalGenerator:
    return LocalGenerator(width, height, defect_rate=defect_rate)


def paint_range(batch: CandidateRange, *, width: int, height: int, defect_rate: float) -> list[PaintedCandidate]:
    """One range of candidates, painted (in a worker)."""
    return _generator(width, height, defect_rate=defect_rate).paint(batch)


def _pool(*, spare: bool = False) -> ProcessPoolExecutor:
    with _lock:
        if spare not in _pools:
            # forkserver: workers fork from a clean process, not from the router's threads and loop.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["services.router.providers.local.painting_workers"])
            _pools[spare] = ProcessPoolExecutor(1 if spare else _workers(), mp_context=context,
                                                initializer=_start_worker, initargs=(os.getpid(), not spare))
        return _pools[spare]


def _restart(broken: ProcessPoolExecutor, *, spare: bool) -> None:
    with _lock:
        if _pools.get(spare) is broken:
            _pools.pop(spare).shutdown(wait=False, cancel_futures=True)


def _places() -> PlacesAndSpare:
    """The workers' places, for the running event loop (each loop keeps its own waiters)."""
    loop = asyncio.get_running_loop()
    with _lock:
        if loop not in _places_by_loop:
            _places_by_loop[loop] = PlacesAndSpare(_workers(), spare_lane=True)
        return _places_by_loop[loop]


def paint_sittings(sittings: list[Sitting]) -> list[bytes]:
    """Portraits of a subject, painted (in a worker)."""
    return [paint_portrait(sitting) for sitting in sittings]


async def paint(batch: CandidateRange, *, width: int, height: int, defect_rate: float) -> list[PaintedCandidate]:
    """The range painted by a worker, once it is the call's turn (`CALL_TURN`), or at once by
    the spare worker."""
    return await _by_a_worker(functools.partial(paint_range, batch, width=width, height=height, defect_rate=defect_rate))


async def paint_portraits(sittings: Sequence[Sitting]) -> list[bytes]:
    """The portraits of `sittings` (JPEGs, in their order), painted by a worker as `paint`'s
    ranges are."""
    return await _by_a_worker(functools.partial(paint_sittings, list(sittings)))


async def _by_a_worker(painting: Callable[[], T]) -> T:
    async with _places().place(CALL_TURN.get() or Turn(tenant="")) as spare:
        loop = asyncio.get_running_loop()
        pool = _pool(spare=spare)
        try:
            return await loop.run_in_executor(pool, painting)
        except BrokenProcessPool:
            log.warning("a painting worker died; the pool is started again and the painting tried once more")
            _restart(pool, spare=spare)
            return await loop.run_in_executor(_pool(spare=spare), painting)
