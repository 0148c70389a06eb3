"""A real server on 127.0.0.1, misbehaving clients, and the database compared with what they said (fake engines).

In-process servers (uvicorn in a thread) for socket behaviour; a server *process* (tests/fake_server.py, run
like ``python -m backend``) for kill -9 and SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from backend.services.voice_transport import OUTBOX_SIZE
from tests.fake_server import LONG_REPLY
from tests.fakes import FakeLLM, FakeSTT, fake_engines, pcm_bytes, silence, tone
from tests.live_server import free_port, serve_fakes, wait_healthy

REPO = Path(__file__).resolve().parents[2]
TRANSCRIPT = FakeSTT().texts[0]


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + "/ws/voice" + (f"?{query}" if query else "")


async def recv_json(ws: ClientConnection, timeout: float = 20.0) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(message, str):
            event: dict[str, Any] = json.loads(message)
            return event


async def say_something(ws: ClientConnection, seconds: float = 1.0) -> None:
    for _ in range(int(seconds / 0.1)):
        await ws.send(pcm_bytes(tone(0.1)))
    await ws.send(json.dumps({"type": "end_of_speech"}))


async def until(ws: ClientConnection, kind: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every event up to and including the first of ``kind`` (binary frames skipped)."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        event = await recv_json(ws, max(0.1, deadline - time.monotonic()))
        events.append(event)
        if event["type"] == kind:
            return events


async def first_audio(ws: ClientConnection, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not isinstance(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())), bytes):
        pass


def history(base: str, session_id: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/api/sessions/{session_id}/history", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    turns: list[dict[str, Any]] = response.json()["turns"]
    return turns


def wait_for_turns(base: str, session_id: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        turns = history(base, session_id)
        if len(turns) >= count or time.monotonic() > deadline:
            return turns
        time.sleep(0.05)


# ---- clients that leave, stall, flood or knock on the wrong door ------------------------------------------------


async def test_disconnect_mid_answer_stores_both_turns(tmp_path: Path) -> None:
    engines = fake_engines(llm=FakeLLM(LONG_REPLY, token_delay_s=0.02))
    with serve_fakes(tmp_path, engines) as (base, _app):
        async with connect(ws_url(base)) as ws:
            session_id = (await recv_json(ws))["session_id"]
            await say_something(ws)
            await first_audio(ws)
        turns = wait_for_turns(base, session_id, 2)
    assert [(t["role"], t["outcome"]) for t in turns] == [("user", None), ("assistant", "disconnected")]
    assert turns[0]["content"] == TRANSCRIPT
    said = turns[1]["content"]
    assert said and LONG_REPLY.startswith(said)  # what was produced before the client left, nothing invented


async def test_eight_concurrent_sessions_all_answered_without_errors(tmp_path: Path) -> None:
    with serve_fakes(tmp_path, fake_engines()) as (base, _app):

        async def one_client() -> tuple[str, list[dict[str, Any]]]:
            events: list[dict[str, Any]] = []
            async with connect(ws_url(base)) as ws:
                session_id = (await recv_json(ws))["session_id"]
                for _ in range(2):
                    await say_something(ws)
                    events += await until(ws, "turn_end")
            return session_id, events

        results = await asyncio.gather(*(one_client() for _ in range(8)))
        stored = [history(base, session_id) for session_id, _ in results]
    errors = [e for _, events in results for e in events if e["type"] == "error"]
    assert errors == []
    assert all([e["outcome"] for e in events if e["type"] == "turn_end"] == ["completed"] * 2 for _, events in results)
    assert all(len(turns) == 4 for turns in stored)


@contextmanager
def serve_as_main(tmp_path: Path, engines: Any, **overrides: Any) -> Iterator[tuple[str, Any]]:
    """Like tests.live_server.serve_fakes, but with the uvicorn configuration ``python -m backend`` uses."""
    from backend.__main__ import uvicorn_config
    from backend.main import create_app
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, **overrides)
    app = create_app(settings, engine_loader=lambda _s: engines)
    config = uvicorn_config(app, settings.server)
    config.port = 0
    server = uvicorn.Server(config)
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        await server.serve()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    app.state.test_loop = loops[0]
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", app
    finally:
        server.should_exit = True
        thread.join(15)


async def test_a_client_that_stops_reading_is_dropped_and_its_turn_kept(tmp_path: Path) -> None:
    # The reply is paced at real time, so a stalled reader costs the server at most the socket buffers and a
    # fixed-size outbox; the protocol ping (or, once buffers are full, the send timeout) then drops it.
    engines = fake_engines(llm=FakeLLM(" ".join([LONG_REPLY] * 3)))
    settings = {"server": {"send_timeout_s": 1.0, "ping_interval_s": 1.0}, "llm": {"max_response_tokens": 200}}
    with serve_as_main(tmp_path, engines, **settings) as (base, app):
        host, port = base.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that stops soon blocks the sender
        sock.connect((host, int(port)))
        async with connect(ws_url(base), sock=sock, max_queue=1) as ws:
            session_id = (await recv_json(ws))["session_id"]
            await ws.send(json.dumps({"type": "config", "output_sample_rate": 48000}))
            await say_something(ws)
            services = app.state.services
            peak = 0
            deadline = time.monotonic() + 15
            while services.active_connections and time.monotonic() < deadline:  # we never read again
                peak = max([peak, *(s.transport.outbox.qsize() for s in services.active_connections)])
                await asyncio.sleep(0.1)
            dropped = not services.active_connections
        turns = wait_for_turns(base, session_id, 2)
    assert dropped, "the server still holds the stalled client"
    assert peak <= OUTBOX_SIZE  # what waits for a stalled client is bounded
    assert [t["role"] for t in turns] == ["user", "assistant"] and turns[1]["outcome"] == "disconnected"


async def test_an_engine_failing_for_one_request_leaves_the_others_answering(tmp_path: Path) -> None:
    llm = FakeLLM()
    llm.fail_when = "explode"
    with serve_fakes(tmp_path, fake_engines(llm=llm)) as (base, _app):
        async with httpx.AsyncClient(base_url=base, timeout=20) as http, connect(ws_url(base)) as ws:
            await recv_json(ws)
            await say_something(ws)
            bad, voice = await asyncio.gather(
                http.post("/api/text-chat", json={"text": "please explode now"}), until(ws, "turn_end")
            )
            good = await http.post("/api/text-chat", json={"text": "and now a normal question"})
    assert bad.status_code == 500 and bad.json()["code"] == "model_error"
    assert voice[-1]["outcome"] == "completed" and not [e for e in voice if e["type"] == "error"]
    assert good.status_code == 200 and good.json()["response"]


async def test_an_oversize_frame_closes_with_1009(tmp_path: Path) -> None:
    with serve_fakes(tmp_path, fake_engines(), server={"max_frame_kb": 64}) as (base, app):
        async with connect(ws_url(base), max_size=None) as ws:
            await recv_json(ws)
            await ws.send(b"\0" * (200 * 1024))
            with pytest.raises(ConnectionClosed) as closed:
                await until(ws, "never")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        async with connect(ws_url(base)) as other:  # the server carries on
            assert (await recv_json(other))["type"] == "ready"
        assert not app.state.services.active_connections or len(app.state.services.active_connections) <= 1


async def test_a_bad_origin_is_refused_with_403_and_same_origin_is_served(tmp_path: Path) -> None:
    with serve_fakes(tmp_path, fake_engines(), server={"cors_origins": ["https://mentor.example.org"]}) as (base, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(base), origin="https://evil.example"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
        for origin in (base, "https://mentor.example.org"):
            async with connect(ws_url(base), origin=origin) as ws:  # type: ignore[arg-type]
                assert (await recv_json(ws))["type"] == "ready"


async def test_keys_own_their_sessions_and_a_wrong_key_costs_no_model_call(tmp_path: Path) -> None:
    engines = fake_engines()
    with serve_fakes(tmp_path, engines, security={"api_keys": ["alice-key", "bob-key"]}) as (base, _app):
        alice, bob = {"Authorization": "Bearer alice-key"}, {"X-API-Key": "bob-key"}
        created = httpx.post(f"{base}/api/text-chat", json={"text": "my private worry"}, headers=alice, timeout=10)
        session_id = created.json()["session_id"]
        calls = engines.stt.calls  # type: ignore[attr-defined]
        prompts = len(engines.llm.prompts)  # type: ignore[attr-defined]
        foreign = [
            httpx.get(f"{base}/api/sessions/{session_id}/history", headers=bob),
            httpx.delete(f"{base}/api/sessions/{session_id}", headers=bob),
            httpx.post(f"{base}/api/text-chat", json={"text": "hi", "session_id": session_id}, headers=bob),
        ]
        listed = httpx.get(f"{base}/api/sessions", headers=bob).json()["sessions"]
        wrong = httpx.post(f"{base}/api/text-chat", json={"text": "hi"}, headers={"Authorization": "Bearer nope"})
        async with connect(ws_url(base)) as ws:
            await ws.send(json.dumps({"type": "auth", "api_key": "nope"}))
            refused = await recv_json(ws)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        still_private = history(base, session_id, alice)
    assert [r.status_code for r in foreign] == [404, 404, 404]
    assert session_id not in [s["session_id"] for s in listed]
    assert wrong.status_code == 401 and refused["code"] == "unauthorized"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert engines.stt.calls == calls and len(engines.llm.prompts) == prompts  # type: ignore[attr-defined]
    assert [t["role"] for t in still_private] == ["user", "assistant"]


# ---- the server process: kill -9 and SIGTERM -------------------------------------------------------------------


@contextmanager
def server_process(
    db: str, token_delay: float = 0.0, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    cmd = [sys.executable, "-m", "tests.fake_server", "--port", str(port), "--db", db]
    out = open(log, "wb") if log is not None else None
    proc = subprocess.Popen(
        [*cmd, "--token-delay", str(token_delay)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT if out else None
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, [proc])
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if out is not None:
            out.close()


async def test_kill_9_mid_turn_keeps_every_completed_turn(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'kill.db'}"
    with server_process(db, token_delay=0.03) as (base, proc):
        first = httpx.post(f"{base}/api/text-chat", json={"text": "first thing"}, timeout=30).json()
        session_id = first["session_id"]
        for text in ("second thing", "third thing"):
            httpx.post(f"{base}/api/text-chat", json={"text": text, "session_id": session_id}, timeout=30)
        before = history(base, session_id)
        async with connect(ws_url(base, f"session_id={session_id}")) as ws:
            await recv_json(ws)
            await say_something(ws)
            await first_audio(ws)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    with server_process(db) as (base, _proc):
        after = history(base, session_id)
        again = httpx.post(f"{base}/api/text-chat", json={"text": "still there?", "session_id": session_id}, timeout=30)
    assert len(before) == 6 and after[:6] == before  # every completed turn, byte for byte
    assert after[6]["role"] == "user" and after[6]["content"] == TRANSCRIPT  # stored before the reply began
    assert again.status_code == 200


async def test_sigterm_closes_sockets_with_1012_persists_the_turn_and_exits_in_time(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'term.db'}"
    log = tmp_path / "server.log"
    with server_process(db, token_delay=0.03, log=log) as (base, proc):
        async with connect(ws_url(base)) as ws:
            session_id = (await recv_json(ws))["session_id"]
            await say_something(ws)
            await first_audio(ws)
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 15)
        code = proc.wait(15)
        exited_after = time.monotonic() - signalled
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    # uvicorn re-raises the signal after its graceful shutdown, as process managers expect (-15 = SIGTERM).
    assert exited_after < 10 and code in (0, -signal.SIGTERM)
    assert "ClarityMentor backend stopped" in log.read_text()  # the lifespan's shutdown ran to the end
    with server_process(db) as (base, _proc):
        turns = history(base, session_id)
    assert [t["role"] for t in turns] == ["user", "assistant"]
    assert turns[1]["outcome"] == "disconnected" and LONG_REPLY.startswith(turns[1]["content"])


# ---- soak -----------------------------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _server_tasks(app: Any) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(count(), app.state.test_loop).result(5)


async def test_soak_twenty_sessions_ten_turns_each_loses_nothing(tmp_path: Path) -> None:
    with serve_as_main(tmp_path, fake_engines()) as (base, app):
        services = app.state.services

        async def client(turns: int) -> tuple[str, int]:
            async with connect(ws_url(base)) as ws:
                session_id = (await recv_json(ws))["session_id"]
                done = 0
                for _ in range(turns):
                    await say_something(ws, 0.5)
                    events = await until(ws, "turn_end", timeout=60)
                    done += events[-1]["outcome"] == "completed"
                await ws.send(pcm_bytes(silence(0.1)))
            return session_id, done

        await asyncio.gather(*(client(1) for _ in range(20)))  # warm every pool to its size before the baseline
        await asyncio.sleep(0.5)  # let the warm-up connections finish closing
        tasks_before, threads_before, rss_before = _server_tasks(app), threading.active_count(), _rss_mb()
        results = await asyncio.gather(*(client(10) for _ in range(20)))
        await asyncio.sleep(0.5)
        stored = {session_id: history(base, session_id) for session_id, _ in results}
        leftovers = (len(services.active_connections), len(services.mentor._saves), services.models.llm_runner.pending)
        tasks_after, threads_after, rss_after = _server_tasks(app), threading.active_count(), _rss_mb()
    assert [done for _, done in results] == [10] * 20
    assert all(len(turns) == 20 for turns in stored.values())  # 200 user + 200 assistant turns, none lost
    assert all(t["content"] for turns in stored.values() for t in turns)
    assert leftovers == (0, 0, 0)
    assert tasks_after <= tasks_before  # every session's tasks ended with it
    pools = sum(r.workers for r in (services.models.stt_runner, services.models.llm_runner, services.models.vad_runner))
    assert threads_after <= threads_before + pools  # worker pools are bounded (they may still be filling up)
    assert rss_after - rss_before < 60, f"RSS grew {rss_after - rss_before:.0f} MB over 200 turns"
    assert np.isfinite(rss_after)


async def test_an_interrupt_after_the_reply_is_fully_queued_cuts_it_at_once(tmp_path: Path) -> None:
    """A fast model writes and synthesises the whole reply long before it has played (audio is paced at real
    time): the cut must drop what is still queued, not let it play out (a regression the benchmark caught)."""
    with serve_fakes(tmp_path, fake_engines(llm=FakeLLM(LONG_REPLY))) as (base, _app):
        async with connect(ws_url(base)) as ws:
            await recv_json(ws)
            await say_something(ws)
            await first_audio(ws)
            await asyncio.sleep(0.5)  # by now every sentence is synthesised and queued
            await ws.send(json.dumps({"type": "interrupt"}))
            after: list[str] = []
            while True:
                message = await asyncio.wait_for(ws.recv(), 20)
                if isinstance(message, bytes):
                    after.append("<audio>")
                    continue
                kind = json.loads(message)["type"]
                after.append(kind)
                if kind == "turn_end":
                    break
    cut = after.index("interrupted")
    # Nothing of the cut reply follows the interrupt: not its remaining text, audio, or end-of-audio marker.
    assert "<audio>" not in after[cut:] and "audio_end" not in after and "response_delta" not in after[cut:]
