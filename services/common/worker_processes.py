"""What a service's worker processes have in common: they give way to the services, and they
outlive no service.

* Giving way (`yield_to_services`): a worker's CPU is background work, so it runs as a batch
  process, niced; the services' event loops (its owner's, and on a shared node the broker's and
  the other services') run first. Under a real-time policy a busy worker is otherwise never
  preempted by its peers and starves them. A worker that must not give way (a spare lane's)
  keeps its owner's policy instead (`keep_priority_of`).
* Outliving no owner (`exit_without`): a service killed (-9 too) runs no shutdown, and a
  forkserver lives as long as its workers do; each worker watches its owner's process and ends
  itself once it is gone.
* One core each (`one_thread_each`): a service starts a worker per core, so a worker's
  numerical libraries (BLAS, OpenMP) run one thread each. Their own pools are sized by the
  cores and spin between calls: with numpy's OpenBLAS at two threads, a delivered 128-pixel
  image took 20 ms of CPU to render on two cores, 14 ms at one, and the spin grows with the cores.
"""

import os
import threading
import time

ORPHAN_CHECK_S = 1.0
WORKER_NICENESS = 10


def yield_to_services() -> None:
    """The calling process (or, on Linux, the calling thread) runs as a niced batch task."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or not allowed: the niceness still applies
        pass
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass


def keep_priority_of(owner: int) -> None:
    """The calling process runs under its owner's scheduling policy, whatever the process it
    was forked from runs under."""
    try:
        os.sched_setscheduler(0, os.sched_getscheduler(owner), os.sched_getparam(owner))
    except (AttributeError, OSError):  # not Linux, or not allowed: it keeps what it inherited
        pass


def one_thread_each() -> None:
    """The BLAS and OpenMP libraries this process has loaded use one thread each from now on
    (call it once the modules the worker computes with are imported)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def exit_without(owner: int) -> None:
    """Ends this process once `owner` is gone (runs for ever: start it in a daemon thread)."""
    while True:
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(0)
        time.sleep(ORPHAN_CHECK_S)


def watch_owner(owner: int) -> None:
    threading.Thread(target=exit_without, args=(owner,), name="owner-check", daemon=True).start()
