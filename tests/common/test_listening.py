"""Listening for NOTIFY (services/common/listening.py), against the real PostgreSQL: every
payload comes, in order, also after the connection was lost and opened again; and a listener
that hears nothing takes no turn of its event loop (psycopg's own `notifies()` wakes every
tenth of a second, in every listener of every service)."""

import asyncio
import threading
import uuid
from pathlib import Path

import psycopg

from services.common.listening import Channel, listen
from tests.metrics import wakes
from tests.polling import eventually


async def notify(database_url: str, channel: str, *payloads: str) -> None:
    """The payloads in one transaction, so they reach a listener together."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for payload in payloads:
            await conn.execute("SELECT pg_notify(%s, %s)", [channel, payload])
        await conn.commit()


async def test_every_payload_comes_in_order_and_again_after_the_connection_is_lost(endpoints):
    channel = f"listening_{uuid.uuid4().hex[:8]}"
    heard: list[str | None] = []
    lost: list[bool] = []
    task = asyncio.create_task(listen(Channel(endpoints.database_url, channel, 0.1), heard.append,
                                      on_lost=lambda: lost.append(True)))
    try:
        await eventually(lambda: heard == [None], what="the listener never started")
        await notify(endpoints.database_url, channel, "a", "b", "c")
        await notify(endpoints.database_url, channel, "d")
        await eventually(lambda: heard == [None, "a", "b", "c", "d"], what=f"heard {heard}")

        async with await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True) as conn:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE %s",
                               [f'%LISTEN "{channel}"%'])
        await eventually(lambda: lost == [True] and heard[-1] is None, what="the lost listener never started again")
        await notify(endpoints.database_url, channel, "e")
        await eventually(lambda: heard[-1] == "e", what=f"heard {heard}")
        assert heard == [None, "a", "b", "c", "d", None, "e"]
    finally:
        task.cancel()


async def test_a_process_hears_every_channel_on_one_connection_and_each_listener_only_its_own(endpoints):
    """PostgreSQL signals every listening backend at each commit that notifies: one connection a
    process, however many channels its parts hear; each part still hears only its channel."""
    channels = [f"shared_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    heard: dict[str, list[str | None]] = {channel: [] for channel in channels}
    tasks = [asyncio.create_task(listen(Channel(endpoints.database_url, channel, 0.1), heard[channel].append))
             for channel in channels]
    try:
        await eventually(lambda: all(h == [None] for h in heard.values()), what=f"heard {heard}")
        async with await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True) as conn:
            backends = {channel: [row[0] for row in await (await conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE %s", [f'%LISTEN "{channel}"%'])).fetchall()]
                for channel in channels}
        assert len(set(map(tuple, backends.values()))) == 1 and len(backends[channels[0]]) == 1, backends
        for i, channel in enumerate(channels):
            await notify(endpoints.database_url, channel, f"{i}a", f"{i}b")
        await eventually(lambda: all(len(h) == 3 for h in heard.values()), what=f"heard {heard}")
        assert heard == {channel: [None, f"{i}a", f"{i}b"] for i, channel in enumerate(channels)}

        tasks.pop().cancel()  # one part stops listening: the others still hear theirs
        await notify(endpoints.database_url, channels[0], "later")
        await eventually(lambda: heard[channels[0]][-1] == "later", what=f"heard {heard}")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_what_comes_while_channels_are_added_is_heard_in_order(endpoints):
    """A channel added later is LISTENed on the connection already listening; what arrives for
    the others while that statement runs is read by psycopg, and must still reach them."""
    channel = f"during_{uuid.uuid4().hex[:8]}"
    heard: list[str | None] = []
    tasks = [asyncio.create_task(listen(Channel(endpoints.database_url, channel, 0.1), heard.append))]
    sent = [str(i) for i in range(300)]

    async def send() -> None:
        async with await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True) as conn:
            for payload in sent:
                await conn.execute("SELECT pg_notify(%s, %s)", [channel, payload])

    try:
        await eventually(lambda: heard == [None], what="the listener never started")
        sending = asyncio.create_task(send())
        added: list[str | None] = []
        while not sending.done():  # channels added while the payloads come
            tasks.append(asyncio.create_task(listen(Channel(endpoints.database_url, f"added_{uuid.uuid4().hex[:8]}", 0.1),
                                                    added.append)))
            await asyncio.sleep(0.005)
        await sending
        await eventually(lambda: len(heard) == len(sent) + 1, what=f"heard {len(heard) - 1} of {len(sent)}")
        assert heard == [None, *sent]
        assert added.count(None) == len(tasks) - 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_listeners_that_hear_nothing_leave_their_thread_asleep(endpoints):
    listeners, seconds = 10, 2.0
    woken: list[int] = []

    async def listen_idle() -> None:
        heard: list[str | None] = []
        tasks = [asyncio.create_task(listen(Channel(endpoints.database_url, f"idle_{uuid.uuid4().hex[:8]}", 1.0), heard.append))
                 for _ in range(listeners)]
        try:
            await eventually(lambda: heard.count(None) == listeners, what="the listeners never started")
            before = wakes(Path("/proc/thread-self/status"))
            await asyncio.sleep(seconds)
            woken.append(wakes(Path("/proc/thread-self/status")) - before)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # A loop of its own in a thread of its own: the session's loop runs other tests' tasks.
    thread = threading.Thread(target=asyncio.run, args=(listen_idle(),))
    thread.start()
    thread.join()
    # Once for the sleep; woken every tenth of a second, as psycopg's notifies() waits, ten
    # listeners started together woke it 41 times (their timers fall due together).
    assert woken and woken[0] <= 10, f"{listeners} idle listeners woke their thread {woken} times in {seconds} s"
