"""CPU-bound work off the event loop: one worker thread for a process's large pieces of work."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

OFF_LOOP_FROM = 20
"""From this many items, CPU-bound work runs in the worker thread (:func:`off_loop`)."""


_CPU = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cpu-bound")
"""One thread: with one per request (asyncio.to_thread's pool), four batches' threads took the
GIL from the event loop four times out of five."""


SWITCH_INTERVAL = 0.0005
"""Seconds the worker thread keeps the GIL once the event loop asks for it (Python's default
is 5 ms). The loop gives the GIL up at every socket call; with the default, each cost it up
to 5 ms more whenever the worker was busy."""
sys.setswitchinterval(SWITCH_INTERVAL)


async def off_loop(size: int, work: Callable[[], T]) -> T:
    """``work`` (CPU-bound, over ``size`` items) in the worker thread when it is large, so that
    the event loop keeps answering meanwhile: the thread hands the GIL over every few
    milliseconds. A batch of 500 reports held intake's loop for about a second, and a P1 sent
    meanwhile waited for it. Small work runs here: the thread would cost more than it saves."""
    if size < OFF_LOOP_FROM:
        return work()
    return await asyncio.get_running_loop().run_in_executor(_CPU, work)
