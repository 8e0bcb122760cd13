"""Delivery's rendering workers, real processes: a file comes back post-processed, watermarked
and signed; the workers are handed out in fair turns, so another tenant's one file is rendered
next after those under way, however many a flood has waiting, and at once by the spare lane's
worker; and a worker that dies is replaced."""

import asyncio
import io
import os
import signal
from datetime import UTC, datetime
from uuid import uuid4

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_info

from services.common import watermark, worker_processes
from services.common.provenance import new_signing_credentials, read_manifest
from services.common.templates import Delivery
from services.common.turns import Turn
from services.delivery import provenance, rendering
from tests.common.test_watermark import photograph

CREDENTIALS = new_signing_credentials("test deployment")


def png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photograph("astronaut", side=side)).save(buffer, format="PNG")
    return buffer.getvalue()


def order(source: bytes, n: int = 1) -> rendering.FileToRender:
    origin = provenance.Origin(job_id=uuid4(), n=n, provider="local-fast", template="generic", created_at=datetime.now(UTC), source=source, model="painter", model_version="1")
    return rendering.FileToRender(origin, Delivery(format="jpeg", quality=85), is_clip=False)


def ready(value: rendering.FileToRender):
    async def fetch() -> rendering.FileToRender:
        return value
    return fetch


async def test_a_file_comes_back_marked_and_signed_with_the_cpu_it_took():
    renderer = rendering.Renderer(provenance.Marker(CREDENTIALS), workers=1)
    try:
        job = order(png(512))
        rendered = await renderer.render(Turn(tenant="t1"), ready(job))
    finally:
        renderer.stop()
    done = rendered.done
    identity = provenance.mark_id(job.origin.job_id, 1)
    assert read_manifest(done.image.data, "image/jpeg", anchors_pem=CREDENTIALS.anchor_pem).state == "Trusted"
    with Image.open(io.BytesIO(done.image.data)) as opened:
        assert watermark.detect(np.asarray(opened.convert("RGB"))).mark_id == identity
    assert done.claims is not None and done.claims.provider == "local-fast" and done.claims.soft_binding
    assert rendered.cpu_s > 0 and rendered.watermark_megapixels > 0.25  # the image and its thumbnail


async def test_another_tenants_file_is_rendered_next_after_those_under_way():
    renderer = rendering.Renderer(provenance.Marker(CREDENTIALS), workers=1, spare_lane=False)
    finished: list[str] = []
    source = png(384)

    async def one(tenant: str, n: int) -> None:
        await renderer.render(Turn(tenant=tenant), ready(order(source, n)))
        finished.append(tenant)

    try:
        flood = [asyncio.create_task(one("flood", n)) for n in range(1, 9)]
        await asyncio.sleep(0)  # the flood's first takes the worker, the rest wait their turns
        other = asyncio.create_task(one("other", 1))
        await asyncio.gather(*flood, other)
    finally:
        renderer.stop()
    assert len(finished) == 9
    assert finished.index("other") <= 2, finished  # after the flood's file under way (and its next turn at most)


async def test_a_worker_that_dies_is_replaced_and_the_file_rendered_all_the_same():
    renderer = rendering.Renderer(provenance.Marker(CREDENTIALS), workers=1)
    try:
        await renderer.render(Turn(tenant="t1"), ready(order(png(256))))
        pool = renderer._pool()
        for pid in list(pool._processes):  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        rendered = await renderer.render(Turn(tenant="t1"), ready(order(png(256))))
    finally:
        renderer.stop()
    assert rendered.done.watermark_id is not None


OWNER = """
import asyncio, sys
sys.path.insert(0, ".")
from services.common.turns import Turn
from services.delivery import provenance, rendering
from tests.delivery.test_rendering import CREDENTIALS, order, png, ready

async def main():
    renderer = rendering.Renderer(provenance.Marker(CREDENTIALS), workers=1)
    await renderer.render(Turn(tenant="t1"), ready(order(png(128))))
    print(" ".join(str(pid) for pid in renderer._pool()._processes), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_the_workers_of_a_killed_delivery_end_themselves():
    """Delivery killed with -9 runs no shutdown: its workers must not live on without it."""
    import subprocess
    import sys

    from tests.polling import until

    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        assert owner.stdout is not None
        workers = [int(pid) for pid in owner.stdout.readline().split()]
        assert len(workers) == 1 and all(alive(pid) for pid in workers)
    finally:
        owner.kill()
        owner.wait()
    until(lambda: not any(alive(pid) for pid in workers), timeout_s=30, what=f"workers {workers} still alive")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie has ended, only its entry waits
    except FileNotFoundError:
        return False


async def test_a_worker_runs_as_background_work_that_gives_way_to_the_services():
    renderer = rendering.Renderer(provenance.Marker(CREDENTIALS), workers=1)
    try:
        await renderer.render(Turn(tenant="t1"), ready(order(png(128))))
        [pid] = list(renderer._pool()._processes)  # type: ignore[attr-defined]
        policy, niceness = os.sched_getscheduler(pid), os.getpriority(os.PRIO_PROCESS, pid)
    finally:
        renderer.stop()
    assert policy == os.SCHED_BATCH
    assert niceness >= os.getpriority(os.PRIO_PROCESS, 0) + worker_processes.WORKER_NICENESS or niceness == 19


async def test_a_worker_computes_on_one_thread_of_each_numerical_library():
    # A worker per core: numpy's BLAS at a thread per core spun between calls (20 ms of CPU a
    # 128-pixel file on two cores, 14 at one thread).
    renderer = rendering.Renderer(provenance.Marker(CREDENTIALS), workers=1)
    try:
        libraries = await asyncio.get_running_loop().run_in_executor(renderer._pool(), threadpool_info)
    finally:
        renderer.stop()
    assert libraries, "numpy's BLAS is loaded in a worker"
    assert [library["num_threads"] for library in libraries] == [1] * len(libraries), libraries


async def flood_and_another(renderer: rendering.Renderer, *, others: int) -> list[tuple[str, str]]:
    """What happened, in order: ("placed", tenant) when a file was handed a place (its source is
    fetched then) and ("done", tenant) when it came back rendered. Read in the event loop, so the
    order says what the lanes decided, not which worker process started or rendered faster."""
    events: list[tuple[str, str]] = []
    source = png(384)

    async def one(tenant: str, n: int) -> None:
        async def fetch() -> rendering.FileToRender:
            events.append(("placed", tenant))
            return order(source, n)
        await renderer.render(Turn(tenant=tenant), fetch)
        events.append(("done", tenant))

    flood = [asyncio.create_task(one("flood", n)) for n in range(1, 9)]
    await asyncio.sleep(0)  # the flood's first takes the worker, the rest wait their turns
    rest = [asyncio.create_task(one("other", n)) for n in range(1, others + 1)]
    await asyncio.gather(*flood, *rest)
    return events


def placed_while_the_first_was_in_hand(events: list[tuple[str, str]]) -> list[str]:
    return [tenant for what, tenant in events[:events.index(("done", "flood"))] if what == "placed"]


async def test_a_tenant_with_nothing_under_way_takes_the_spare_lane_at_the_services_priority():
    renderer = rendering.Renderer(provenance.Marker(CREDENTIALS), workers=1)
    try:
        events = await flood_and_another(renderer, others=1)
        [pid] = list(renderer._pool(spare=True)._processes)  # type: ignore[attr-defined]
        policy, niceness = os.sched_getscheduler(pid), os.getpriority(os.PRIO_PROCESS, pid)
    finally:
        renderer.stop()
    assert events.count(("done", "other")) == 1 and events.count(("done", "flood")) == 8
    # Rendered beside the flood's file in hand, not after it.
    assert placed_while_the_first_was_in_hand(events) == ["flood", "other"], events
    assert policy == os.sched_getscheduler(0) and niceness == os.getpriority(os.PRIO_PROCESS, 0)


async def test_a_flood_never_takes_the_spare_lane():
    renderer = rendering.Renderer(provenance.Marker(CREDENTIALS), workers=1)
    try:
        await flood_and_another(renderer, others=0)
        assert True not in renderer._executors  # the flood alone: never started
        events = await flood_and_another(renderer, others=2)
    finally:
        renderer.stop()
    # The other tenant's first file takes the spare lane (its second waits for a place, the spare
    # one too: which comes first depends on which worker finishes first).
    assert events.count(("done", "other")) == 2
    assert placed_while_the_first_was_in_hand(events)[:2] == ["flood", "other"], events
