"""Bounded executors: blocking engine calls run here, never on the event loop, with an explicit queue limit."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from backend.core.exceptions import Overloaded

P = ParamSpec("P")
T = TypeVar("T")


class BoundedRunner:
    def __init__(self, name: str, *, workers: int, max_pending: int) -> None:
        self.name = name
        self.workers = workers
        self.max_pending = max_pending
        self.pending = 0
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"engine-{name}")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.pending >= self.max_pending:
            raise Overloaded(f"the {self.name} engine is busy ({self.pending} requests waiting); retry shortly")
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        finally:
            self.pending -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
