"""Waiting in tests for what another process or task does: the one poll loop they share.

`until` (a thread) and `eventually` (a coroutine) call `check` until it gives something
true and return it; past `timeout_s` they fail, saying `what` (a text, or a function that
tells what is still wrong when it is called). `eventually` awaits a check that returns an
awaitable, so a coroutine function and a plain function both do."""

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

What = str | Callable[[], Any]


def _said(what: What, timeout_s: float) -> str:
    return f"{what() if callable(what) else what}: not after {timeout_s} s"


def until(check: Callable[[], Any], timeout_s: float = 60, what: What = "never", pause_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(_said(what, timeout_s))
        time.sleep(pause_s)
    return found


async def eventually(check: Callable[[], Any], timeout_s: float = 60, what: What = "never",
                     pause_s: float = 0.05) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError(_said(what, timeout_s))
        await asyncio.sleep(pause_s)
