"""The CPU work of delivering a file (decode, both watermarks, encode, sign) in a bounded pool of
worker processes, handed out in fair turns across tenants.

* A job's images are rendered side by side on every core (`render_workers` processes, one per
  core by default), not in the event loop's threads, which take turns on one interpreter.
* Bounded: at most one order a worker is fetched and rendered at once (`Renderer.render` takes a
  turn before its source is even read), so the memory held is a worker's count of images, not
  a flood's.
* Fair: the turns are `services.common.turns`' (start-time fair queuing over tenants, a plan's
  share, a job's priority), so another tenant's image is rendered next after the images under
  way, whatever a flood has waiting.
* A worker process that dies (the kernel's OOM killer, a decoder's crash) breaks the pool: a
  new one is started and the order tried again once.
* A worker gives way (`services.common.worker_processes`): it runs as a batch process, niced,
  so a flood's rendering never keeps the services' event loops from the CPU (under a real-time
  policy a busy peer is never preempted).
* A spare lane: one more worker, at the services' own priority, renders the file of a tenant
  with nothing else under way here while every other worker is busy (a flood's): that file
  neither waits for the flood's files in hand nor renders at their lower priority. It takes
  one file at a time, so a flood, whose files are always under way, never uses it.
* A worker outlives no delivery: killed (-9 too), delivery runs no shutdown, and the forkserver
  lives as long as its workers do; each worker watches delivery's process and exits once it is gone.
"""

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

from services.common import telemetry, watermark
from services.common.provenance import SigningCredentials
from services.common.templates import Delivery
from services.common.turns import PlacesAndSpare, Turn
from services.common.worker_processes import keep_priority_of, one_thread_each, watch_owner, yield_to_services
from services.delivery import clips, postprocess, provenance
from services.delivery.postprocess import RenderedFiles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileToRender:
    """One file to render: the candidate as made (`origin.source`), the template's delivery,
    and whether it is a video clip."""

    origin: provenance.Origin
    delivery: Delivery
    is_clip: bool


@dataclass(frozen=True, kw_only=True)
class RenderedFile:
    """A rendered file, and the CPU it took: in all, and the watermark's part of it."""

    done: RenderedFiles
    cpu_s: float
    watermark_cpu_s: float
    watermark_megapixels: float


_marker: provenance.Marker | None = None  # a worker's own, made once by `start_worker`


def start_worker(credentials: SigningCredentials, tsa_url: str | None, owner: int, gives_way: bool = True) -> None:
    global _marker
    # First, so every thread the worker starts inherits it.
    if gives_way:
        yield_to_services()
    else:
        keep_priority_of(owner)
    one_thread_each()  # numpy (the watermark's arithmetic) is loaded: the forkserver preloads this module
    _marker = provenance.Marker(credentials, tsa_url)
    watch_owner(owner)


def render(order: FileToRender) -> RenderedFile:
    """Post-process, watermark and sign one file (in a worker process)."""
    assert _marker is not None, "a worker starts with start_worker"
    started = time.process_time()
    origin = order.origin
    mark = watermark.Embedding(provenance.mark_id(origin.job_id, origin.n))
    finish = clips.postprocess if order.is_clip else postprocess.postprocess
    done = _marker.mark(finish(origin.source, order.delivery, mark=mark), origin)
    if order.is_clip:  # what the receipt says of a clip is read from the file as delivered, signed
        done = replace(done, image=clips.described(done.image.data))
    return RenderedFile(done=done, cpu_s=time.process_time() - started, watermark_cpu_s=mark.cpu_s, watermark_megapixels=mark.megapixels)


class Renderer:
    """The pool, and whose turn it is to use it."""

    def __init__(self, marker: provenance.Marker, workers: int, *, spare_lane: bool = True) -> None:
        self.marker, self.workers = marker, max(1, workers or len(os.sched_getaffinity(0)))
        self._executors: dict[bool, Executor] = {}  # by lane: the spare one (True) and the others
        self._lanes = PlacesAndSpare(self.workers, spare_lane=spare_lane)

    def _pool(self, *, spare: bool = False) -> Executor:
        """The workers of a lane, started on first use: the spare lane's one at the service's
        priority, the others giving way."""
        if spare not in self._executors:
            # forkserver: workers fork from a clean process, not from this one's threads and loop.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["services.delivery.rendering"])
            self._executors[spare] = ProcessPoolExecutor(
                1 if spare else self.workers, mp_context=context, initializer=start_worker,
                initargs=(self.marker.credentials, self.marker.tsa_url, os.getpid(), not spare))
        return self._executors[spare]

    async def render(self, turn: Turn, fetch: Callable[[], Awaitable[FileToRender]]) -> RenderedFile:
        """The order `fetch` reads, rendered by a worker once it is the turn's tenant's turn, or
        at once by the spare lane's when the tenant has nothing else under way and the others
        are busy."""
        async with self._lanes.place(turn) as spare:
            rendered = await self._rendered(await fetch(), spare=spare)
        observe(rendered)
        return rendered

    async def _rendered(self, order: FileToRender, *, spare: bool) -> RenderedFile:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool(spare=spare), render, order)
        except BrokenProcessPool:
            log.warning("a rendering worker died; the pool is started again and the order retried")
            self._stop(spare=spare)
            return await loop.run_in_executor(self._pool(spare=spare), render, order)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        for spare in list(self._executors):
            self._stop(spare=spare)

    def _stop(self, *, spare: bool) -> None:
        executor = self._executors.pop(spare, None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def observe(rendered: RenderedFile) -> None:
    telemetry.DELIVERY_CPU_SECONDS.labels("render").observe(rendered.cpu_s)
    if rendered.watermark_megapixels:
        telemetry.WATERMARK_SECONDS_PER_MEGAPIXEL.observe(rendered.watermark_cpu_s / rendered.watermark_megapixels)
