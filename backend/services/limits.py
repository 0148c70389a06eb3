"""Per-key REST rate limits and the WebSocket connection cap: in memory for one process, in Redis (``REDIS_URL``)
when several workers must share them. Both checks are atomic: a slot is taken in the same step that checks it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from typing import Any, Protocol

# Fixed window counter: INCR, set the expiry on the first hit, answer the count and the time left.
_RATE_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
"""
# Connection slots: a sorted set of connection ids scored by their last heartbeat; stale ids (a worker that died)
# are dropped before counting, so a crash never leaks slots for longer than the heartbeat expiry.
_ACQUIRE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
return 1
"""
HEARTBEAT_EXPIRY_MS = 60_000


class Limits(Protocol):
    async def hit(self, key: str) -> float | None:
        """Count one request for ``key``; None when allowed, else the seconds until it may retry."""
        ...

    async def acquire_connection(self) -> str | None:
        """Take a connection slot; its id, or None when the server (all workers) is full."""
        ...

    async def heartbeat(self, slot: str) -> None: ...

    async def release_connection(self, slot: str) -> None: ...

    async def active_connections(self) -> int: ...

    async def close(self) -> None: ...


class MemoryLimits:
    def __init__(self, requests_per_minute: int, max_connections: int, max_keys: int = 10_000) -> None:
        self.limit = requests_per_minute
        self.max_connections = max_connections
        self._windows: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (count, window start)
        self._slots: set[str] = set()
        self._max_keys = max_keys

    async def hit(self, key: str) -> float | None:
        now = time.monotonic()
        count, start = self._windows.pop(key, (0, now))
        if now - start >= 60:
            count, start = 0, now
        self._windows[key] = (count + 1, start)
        while len(self._windows) > self._max_keys:  # bounded memory under a flood of distinct keys
            self._windows.popitem(last=False)
        return None if count + 1 <= self.limit else max(0.001, 60 - (now - start))

    async def acquire_connection(self) -> str | None:
        # No await between the check and the add: atomic on the event loop.
        if len(self._slots) >= self.max_connections:
            return None
        slot = uuid.uuid4().hex
        self._slots.add(slot)
        return slot

    async def heartbeat(self, slot: str) -> None:
        return None

    async def release_connection(self, slot: str) -> None:
        self._slots.discard(slot)

    async def active_connections(self) -> int:
        return len(self._slots)

    async def close(self) -> None:
        return None


class RedisLimits:
    """Shared by every worker pointed at the same Redis (keys under ``prefix``)."""

    def __init__(self, url: str, requests_per_minute: int, max_connections: int, prefix: str = "claritymentor") -> None:
        import redis.asyncio as aioredis

        self.limit = requests_per_minute
        self.max_connections = max_connections
        self._redis: Any = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._rate = self._redis.register_script(_RATE_SCRIPT)
        self._acquire = self._redis.register_script(_ACQUIRE_SCRIPT)
        self._conn_key = f"{prefix}:connections"

    async def hit(self, key: str) -> float | None:
        count, ttl_ms = await self._rate(keys=[f"{self._prefix}:rate:{key}"], args=[60_000])
        return None if int(count) <= self.limit else max(0.001, int(ttl_ms) / 1000)

    async def acquire_connection(self) -> str | None:
        slot = uuid.uuid4().hex
        now = int(time.time() * 1000)
        args: list[int | str] = [now, HEARTBEAT_EXPIRY_MS, self.max_connections, slot]
        ok = await self._acquire(keys=[self._conn_key], args=args)
        return slot if int(ok) == 1 else None

    async def heartbeat(self, slot: str) -> None:
        await self._redis.zadd(self._conn_key, {slot: int(time.time() * 1000)}, xx=True)

    async def release_connection(self, slot: str) -> None:
        await self._redis.zrem(self._conn_key, slot)

    async def active_connections(self) -> int:
        now = int(time.time() * 1000)
        return int(await self._redis.zcount(self._conn_key, now - HEARTBEAT_EXPIRY_MS, "+inf"))

    async def close(self) -> None:
        await self._redis.aclose()


def make_limits(redis_url: str | None, requests_per_minute: int, max_connections: int) -> Limits:
    if redis_url:
        return RedisLimits(redis_url, requests_per_minute, max_connections)
    return MemoryLimits(requests_per_minute, max_connections)


async def heartbeat_forever(limits: Limits, slot: str, every_s: float = HEARTBEAT_EXPIRY_MS / 3000) -> None:
    """Keep a connection's slot fresh while it lives (a task cancelled when the connection ends)."""
    while True:
        await asyncio.sleep(every_s)
        await limits.heartbeat(slot)
