"""Many workers, one truth: server processes on one PostgreSQL database and one Redis (both on this machine),
fake engines. Two processes started together on a fresh database both come up (migrations are serialised); a
conversation moved from one to the other keeps its history and emotion timeline; the connection cap and the
rate limit hold across them; ``uvicorn --workers 2`` after the prestart step serves one history."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import POSTGRES_URL, REDIS_URL, require_server
from tests.fakes import pcm_bytes, tone
from tests.live_server import free_port, wait_healthy

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test (dropped afterwards)."""
    require_server(POSTGRES_URL, "PostgreSQL")
    require_server(REDIS_URL, "Redis")
    import asyncpg

    name = f"clarity_scale_{uuid.uuid4().hex[:10]}"
    admin = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _env(database_url: str, redis_prefix_db: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_prefix_db,
        CLARITY_CACHE_DIR="/tmp/clarity-fake-cache",  # noqa: S108
        CLARITY_SERVER__LOG_FORMAT="text",
        **extra,
    )
    return env


@contextmanager
def servers(cmds: list[list[str]], env: dict[str, str], ports: list[int]) -> Iterator[list[str]]:
    """Start every command at once (the migration race), wait until each port answers /api/health."""
    with ExitStack() as stack:
        # Each in its own process group: uvicorn --workers forks workers that a kill of the parent alone orphans.
        procs = [subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True) for cmd in cmds]
        for proc in procs:
            stack.callback(_kill_group, proc)
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base in bases:
            wait_healthy(base, procs, timeout_s=90)
        yield bases


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _fake_app(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "tests.fake_server:app", "--host", "127.0.0.1", "--port", str(port)]


async def _voice_turn(url: str) -> tuple[str, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    async with connect(url) as ws:
        session_id = json.loads(await ws.recv())["session_id"]
        for _ in range(8):
            await ws.send(pcm_bytes(tone(0.1)))
        await ws.send(json.dumps({"type": "end_of_speech"}))
        while not events or events[-1]["type"] != "turn_end":
            message = await asyncio.wait_for(ws.recv(), 20)
            if isinstance(message, str):
                events.append(json.loads(message))
    return session_id, events


async def test_two_processes_one_database_share_conversations_and_limits(fresh_database: str) -> None:
    ports = [free_port(), free_port()]
    # Both run the migrations in their lifespan, started together on an empty database: the advisory lock
    # makes the second wait instead of dying on a duplicate table.
    env = _env(
        fresh_database,
        REDIS_URL,
        CLARITY_SERVER__MAX_CONNECTIONS="2",
        CLARITY_SECURITY__REQUESTS_PER_MINUTE="1000",
        CLARITY_DB__MIGRATE_ON_START="true",
    )
    with servers([_fake_app(p) for p in ports], env, ports) as (a, b):
        ws_a, ws_b = (base.replace("http://", "ws://") + "/ws/voice" for base in (a, b))
        session_id, first = await _voice_turn(ws_a)
        _, second = await _voice_turn(f"{ws_b}?session_id={session_id}")  # the same conversation, other worker
        async with httpx.AsyncClient(timeout=20) as http:
            third = await http.post(f"{a}/api/text-chat", json={"text": "and one more", "session_id": session_id})
            from_b = (await http.get(f"{b}/api/sessions/{session_id}/history")).json()
            from_a = (await http.get(f"{a}/api/sessions/{session_id}/history")).json()
        # The cap (2) holds across both processes: one socket on each, a third on either is refused.
        async with connect(ws_a) as one, connect(ws_b) as two:
            await one.recv()
            await two.recv()
            async with connect(ws_b) as three:
                refused = json.loads(await three.recv())
                await asyncio.sleep(0.1)
                close_code = three.close_code
                if close_code is None:
                    await asyncio.wait_for(three.wait_closed(), 5)
                    close_code = three.close_code
    assert first[-1]["outcome"] == "completed" and second[-1]["outcome"] == "completed"
    assert third.status_code == 200
    assert from_a == from_b
    assert [t["role"] for t in from_b["turns"]] == ["user", "assistant"] * 3
    assert len(from_b["emotion_timeline"]) == 3  # every user turn's emotion, whichever worker heard it
    assert refused["code"] == "too_many_connections" and close_code == 1013


def test_prestart_migration_then_two_uvicorn_workers_serve_one_history(fresh_database: str) -> None:
    port = free_port()
    env = _env(fresh_database, REDIS_URL, CLARITY_DB__MIGRATE_ON_START="false")
    prestart = subprocess.run(
        [sys.executable, "-m", "backend.db.migrate"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert prestart.returncode == 0, prestart.stderr
    with servers([[*_fake_app(port), "--workers", "2"]], env, [port]) as (base,):
        with httpx.Client(base_url=base, timeout=20) as http:
            session_id = http.post("/api/text-chat", json={"text": "hello there"}).json()["session_id"]
            replies = [
                http.post("/api/text-chat", json={"text": f"message {i}", "session_id": session_id})
                for i in range(6)
            ]
            turns = http.get(f"/api/sessions/{session_id}/history").json()["turns"]
    assert [r.status_code for r in replies] == [200] * 6
    assert [t["content"] for t in turns if t["role"] == "user"] == ["hello there", *(f"message {i}" for i in range(6))]



def test_six_processes_migrating_a_fresh_database_together_all_succeed(fresh_database: str) -> None:
    """The race of workers each migrating in their lifespan: without the advisory lock some of these die on
    ``UniqueViolationError ... pg_type_typname_nsp_index`` or a duplicate table."""
    env = _env(fresh_database, REDIS_URL)
    start_at = str(time.time() + 4)  # imports first, then all of them migrate at the same instant
    code = (
        "import sys, time; from backend.db.migrate import main; "
        "time.sleep(max(0, float(sys.argv[1]) - time.time())); main()"
    )
    cmd = [sys.executable, "-c", code, start_at]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    codes = [(p.returncode, err) for p, err in zip(procs, errors, strict=True)]
    assert [code for code, _ in codes] == [0] * 6, [err[-300:] for code, err in codes if code]
