"""Bounded executors: blocking engine calls run here, never on the event loop, with an explicit queue limit.

Waiting calls start in priority order (then first come, first served), so with many sessions the work a user is
waiting for goes first: a turn's final transcript before another's speculative pause transcript, the first
sentence of a reply before later sentences of someone else's long reply. A call holds one of ``workers`` slots
until its thread returns, even when its caller was cancelled, so the engine never gets more concurrent calls than
it has threads for.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from backend.core.exceptions import Overloaded

P = ParamSpec("P")
T = TypeVar("T")

URGENT = 0  # a user is waiting on it now (a final transcript, a reply's first sentence)
NORMAL = 1  # needed soon (a pause's transcript, later sentences)
BACKGROUND = 2  # nice to have (partial transcripts for display)


class BoundedRunner:
    def __init__(self, name: str, *, workers: int, max_pending: int) -> None:
        self.name = name
        self.workers = workers
        self.max_pending = max_pending
        self.pending = 0  # waiting + running
        self._free = workers
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"engine-{name}")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run_at(NORMAL, functools.partial(fn, *args, **kwargs))

    async def run_at(self, priority: int, call: Callable[[], T]) -> T:
        """Run ``call`` in a worker thread once a slot is free and no more urgent call is waiting."""
        if self.pending >= self.max_pending:
            raise Overloaded(f"the {self.name} engine is busy ({self.pending} requests waiting); retry shortly")
        self.pending += 1
        try:
            await self._acquire(priority)
            loop = asyncio.get_running_loop()
            job = self._executor.submit(call)
            job.add_done_callback(lambda _: self._release_from_thread(loop))
            return await asyncio.wrap_future(job)
        finally:
            self.pending -= 1

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the slot was handed over just as we were cancelled: pass it on
            raise

    def _release_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._release)
        except RuntimeError:
            pass  # the loop has closed (shutdown): nobody is waiting any more

    def _release(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():  # a cancelled waiter's future is done: skip it
                turn.set_result(None)
                return
        self._free += 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
