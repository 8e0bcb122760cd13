"""The local provider's paintings are made in worker processes (services/router/providers/
painting_workers.py): the same PNGs, and the same portraits of a subject, as painted here, by
workers that give way to the services, taken in fair turns by the router's call turn."""

import asyncio
import functools
import os

import pytest
from threadpoolctl import threadpool_info

from services.common import face_models
from services.common.turns import Turn
from services.common.worker_processes import WORKER_NICENESS
from services.router.providers.base import CALL_TURN
from services.router.providers.local import painting_workers
from services.router.providers.local.painter import CandidateRange, LocalGenerator
from services.router.providers.local.portraits.faces import weights_from_photos
from services.router.providers.local.portraits.painter import Sitting, paint_portrait
from services.router.providers.local.portraits.scene import Look
from tests.router.subject_photos import astronaut_photos


async def test_a_worker_paints_what_the_painter_paints_here():
    batch = CandidateRange(prompt="a lighthouse", seed=7, count=3, start_index=2)
    painted = await painting_workers.paint(batch, width=96, height=64, defect_rate=0.5)
    assert painted == LocalGenerator(96, 64, defect_rate=0.5).paint(batch)


@pytest.mark.skipif(not face_models.embedding_available(), reason="needs dlib and its face models")
async def test_a_worker_paints_the_portraits_painted_here_in_their_order():
    weights = weights_from_photos(list(astronaut_photos()), "TOK")
    sittings = [Sitting(weights=weights, look=Look.of({"backdrop": backdrop, "framing": framing}), size=(160, 200),
                        draw=(11, n, 5), defect=defect)
                for n, (backdrop, framing, defect) in enumerate([("navy", "close", None), ("white", "waist", "two_faces"),
                                                                 ("black", "shoulders", "closed_eyes")])]
    painted = await painting_workers.paint_portraits(sittings)
    assert painted == [paint_portrait(sitting) for sitting in sittings]
    assert len(set(painted)) == 3


async def test_the_workers_give_way_to_the_services():
    loop = asyncio.get_running_loop()
    niceness = await loop.run_in_executor(painting_workers._pool(), os.getpriority, os.PRIO_PROCESS, 0)
    assert niceness >= os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS or niceness == 19
    scheduler = await loop.run_in_executor(painting_workers._pool(), os.sched_getscheduler, 0)
    assert scheduler == os.SCHED_BATCH


async def test_a_worker_paints_on_one_thread_of_each_numerical_library():
    libraries = await asyncio.get_running_loop().run_in_executor(painting_workers._pool(), threadpool_info)
    assert libraries, "numpy's BLAS is loaded in a worker"
    assert [library["num_threads"] for library in libraries] == [1] * len(libraries), libraries


async def test_another_tenants_painting_is_made_next_not_after_a_floods_queued_ones():
    workers = painting_workers._workers()
    finished: list[str] = []
    # The spare worker's process started and its painting imported: a cold one took longer to
    # start than the flood's workers took to finish more of theirs.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(painting_workers._pool(spare=True), functools.partial(
        painting_workers.paint_range, CandidateRange(prompt="warm", seed=0, count=1), width=64, height=64,
        defect_rate=0.0))

    async def call(tenant: str, n: int) -> None:
        CALL_TURN.set(Turn(tenant=tenant))
        await painting_workers.paint(CandidateRange(prompt=f"{tenant} {n}", seed=n, count=2), width=512, height=512,
                                     defect_rate=0.0)
        finished.append(tenant)

    flood = [asyncio.create_task(call("flood", n)) for n in range(3 * workers + 3)]
    await asyncio.sleep(0.05)  # the flood holds every worker and has the rest queued
    other = asyncio.create_task(call("other", 0))
    await asyncio.gather(*flood, other)
    # In hand when it came: the workers' paintings; it is made with the next ones freed.
    assert finished.index("other") <= 2 * workers, finished
    assert len(finished) == 3 * workers + 4


async def test_the_spare_worker_keeps_the_routers_priority():
    loop = asyncio.get_running_loop()
    niceness = await loop.run_in_executor(painting_workers._pool(spare=True), os.getpriority, os.PRIO_PROCESS, 0)
    assert niceness == os.getpriority(os.PRIO_PROCESS, 0)
    scheduler = await loop.run_in_executor(painting_workers._pool(spare=True), os.sched_getscheduler, 0)
    assert scheduler == os.sched_getscheduler(0)
