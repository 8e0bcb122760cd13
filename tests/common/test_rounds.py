"""A periodic round that looks for work (services/common/rounds.py): while it finds some, it
comes every `interval_s`; once it finds none, it rests until it is woken (work was made for it
in this process), until the work it saw waiting falls due, or `idle_interval_s` at most, so
an idle service does not look for work a few times a second."""

import asyncio

from services.common.rounds import PeriodicRound

WAIT_S = 10  # far longer than a woken round takes; far shorter than the idle rest


class Looking(PeriodicRound):
    """Finds `work` rounds' worth of work, then none; with `due_s`, work waiting that falls due."""

    def __init__(self, *, work: int = 0, due_s: float | None = None) -> None:
        self.interval_s, self.idle_interval_s, self.task_name = 0.01, 600.0, "test-looking"
        self.work, self.due_s, self.rounds = work, due_s, 0
        self.looked = asyncio.Event()

    async def sweep_once(self) -> int:
        self.rounds += 1
        self.looked.set()
        worked, self.work = min(self.work, 1), max(0, self.work - 1)
        return worked

    async def next_due_s(self) -> float | None:
        due, self.due_s = self.due_s, None
        return due

    async def next_round(self) -> int:
        self.looked.clear()
        await asyncio.wait_for(self.looked.wait(), WAIT_S)
        return self.rounds


async def test_rounds_that_find_work_come_one_after_another_and_stop_once_none_is_left():
    rounds = Looking(work=3)
    await rounds.start()
    try:
        while rounds.rounds < 4:  # three that worked, one that found nothing
            await rounds.next_round()
        await asyncio.sleep(0.3)  # thirty intervals
    finally:
        await rounds.stop()
    assert rounds.rounds == 4


async def test_a_round_that_found_nothing_is_followed_by_one_once_woken():
    rounds = Looking()
    await rounds.start()
    try:
        await rounds.next_round()
        await asyncio.sleep(0.3)
        assert rounds.rounds == 1
        rounds.wake()
        assert await rounds.next_round() == 2
    finally:
        await rounds.stop()


async def test_work_seen_waiting_brings_the_next_round_when_it_falls_due_unwoken():
    rounds = Looking(due_s=0.05)
    await rounds.start()
    try:
        await rounds.next_round()
        assert await rounds.next_round() == 2
    finally:
        await rounds.stop()
