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
