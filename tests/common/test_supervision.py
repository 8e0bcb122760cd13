"""Background tasks never die silently: a failure is logged, counted and followed by a
restart after a backoff; a task that returns is done; a cancelled one stops. And on SIGUSR1 a
process logs where each of its tasks waits."""

import asyncio
import logging
import os
import signal

from services.common.supervision import (
    BACKGROUND_FAILURES,
    Backoff,
    every,
    log_waiting_tasks_on_signal,
    stop_tasks,
    supervise,
)


def failures(task: str) -> float:
    return BACKGROUND_FAILURES.labels(task)._value.get()


async def test_a_task_that_raises_is_logged_counted_and_started_again(caplog):
    runs = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise ConnectionError(f"run {len(runs)} lost its connection")

    with caplog.at_level(logging.ERROR, logger="services.common.supervision"):
        task = supervise("test-flaky", flaky, backoff=Backoff(floor_s=0.01))
        await asyncio.wait_for(task, 10)

    assert runs == [0, 1, 2]  # the third run got through and the task ended
    assert failures("test-flaky") == 2
    logged = [r for r in caplog.records if "test-flaky" in r.getMessage()]
    assert len(logged) == 2 and all(r.exc_info[0] is ConnectionError for r in logged)


async def test_a_cancelled_task_stops_even_while_it_waits_to_restart():
    async def always_fails() -> None:
        raise RuntimeError("no")

    task = supervise("test-always-fails", always_fails, backoff=Backoff(floor_s=5))
    await asyncio.sleep(0.05)  # failed once, now in its backoff
    await stop_tasks(task)
    assert task.cancelled()
    assert failures("test-always-fails") == 1


def test_the_backoff_doubles_up_to_its_ceiling_with_jitter():
    waits = [[Backoff(1.0, 8.0).wait_s(n) for _ in range(200)] for n in range(1, 7)]
    assert [round(sum(w) / len(w)) for w in waits] == [1, 2, 4, 8, 8, 8]
    assert all(0.5 * min(8.0, 2 ** i) <= x <= 1.5 * min(8.0, 2 ** i) for i, w in enumerate(waits) for x in w)


async def test_a_periodic_round_that_fails_is_counted_and_the_next_comes_as_usual():
    ticks = []

    async def tick() -> None:
        ticks.append(1)
        if len(ticks) % 2:
            raise ValueError("every other round fails")

    task = asyncio.create_task(every(0.01, tick, what="test-every"))
    while len(ticks) < 6:
        await asyncio.sleep(0.01)
    await stop_tasks(task)
    assert failures("test-every") >= 3


async def test_sigusr1_logs_where_each_task_waits_down_the_chain_of_awaits(caplog):
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def painted() -> None:
        await never

    async def attempt() -> None:
        await painted()

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(attempt(), name="attempt-of-a-job")
    log_waiting_tasks_on_signal(loop)
    try:
        await asyncio.sleep(0.01)  # the task is suspended in its chain
        with caplog.at_level(logging.WARNING, logger="services.common.supervision"):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(100):
                if any("attempt-of-a-job" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
        await stop_tasks(task)
    [line] = [r.getMessage() for r in caplog.records if "attempt-of-a-job" in r.getMessage()]
    listed = [r.getMessage() for r in caplog.records if r.getMessage().endswith(" tasks listed")]
    assert len(listed) == 1 and int(listed[0].split()[0]) >= 2, listed  # the test's own task too
    assert line.startswith("task attempt-of-a-job waits in attempt (")
    assert " -> painted (" in line and line.endswith(" -> Future"), line
    assert "test_supervision.py:" in line
