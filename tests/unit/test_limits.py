"""Rate limits, the WebSocket connection cap and request body limits: in one process (memory) and shared by several
apps through Redis. Every refusal is checked for its status, its error code and its close code, and no 5xx."""

from __future__ import annotations

import asyncio
import io
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
import soundfile as sf
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from backend.config import Settings
from backend.services import container
from backend.services.limits import HEARTBEAT_EXPIRY_MS, MemoryLimits, RedisLimits, make_limits
from tests.conftest import REDIS_URL, make_settings, require_server
from tests.fakes import FakeSTT, fake_engines, tone
from tests.live_server import serve_fakes

ClientFactory = Callable[..., TestClient]
RATE = 5
EMOTION_BODY = {"text": "I am happy today"}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Any client's response (httpx for the live server, TestClient's for in-process): the one error shape."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"detail", "code", "error_id"}, body
    assert body["code"] == code, body
    return body


def assert_rate_limited(response: Any) -> int:
    assert_error(response, 429, "rate_limited")
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 60
    return int(retry_after)


def settings_in(tmp_path: Path, name: str, **overrides: Any) -> Settings:
    """Each app gets its own SQLite file: only what the test means to share (Redis) is shared."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    return make_settings(folder, **overrides)


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, rate), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def wait_for_connections(client: TestClient, expected: int, timeout_s: float = 10.0) -> None:
    """A closed socket releases its slot when the server side has finished; wait for that, not a fixed sleep."""
    deadline = time.monotonic() + timeout_s
    while True:
        active = client.get("/api/health").json()["active_connections"]
        if active == expected:
            return
        assert time.monotonic() < deadline, f"active_connections stayed at {active}, expected {expected}"
        time.sleep(0.05)


def expect_ready(ws: Any) -> None:
    assert ws.receive_json()["type"] == "ready"


def expect_refused_busy(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice") as ws:
        event = ws.receive_json()
        assert event["type"] == "error" and event["code"] == "too_many_connections", event
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1013


@pytest.fixture
def redis_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Apps built in this test share Redis limits under a prefix of their own, so other tests using database 15
    at the same time neither disturb them nor get flushed; the keys are deleted afterwards."""
    require_server(REDIS_URL, "Redis")
    prefix = f"test-limits-{uuid.uuid4().hex[:10]}"

    def prefixed(redis_url: str | None, requests_per_minute: int, max_connections: int) -> Any:
        assert redis_url, "the test configures redis_url: the app must pick Redis"
        return RedisLimits(redis_url, requests_per_minute, max_connections, prefix=prefix)

    monkeypatch.setattr(container, "make_limits", prefixed)
    yield prefix
    plain = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(plain.scan_iter(f"{prefix}:*"))
        if keys:
            plain.delete(*keys)
    finally:
        plain.close()


# --- REST rate limit ------------------------------------------------------------------------------------------


def test_a_burst_over_the_limit_gets_429_with_retry_after_and_no_5xx(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, security={"api_key": "k", "requests_per_minute": RATE})
    client = client_factory(settings=settings)
    responses = [
        client.post("/api/text-chat", json={"text": f"hello {i}"}, headers={"X-API-Key": "k"}) for i in range(20)
    ]
    assert [r.status_code for r in responses[:RATE]] == [200] * RATE, [r.text for r in responses[:RATE]]
    for response in responses[RATE:]:
        assert_rate_limited(response)
    assert not [r for r in responses if r.status_code >= 500]
    assert client.get("/api/health").status_code == 200  # health is not counted, and the server is still fine


def test_each_key_has_its_own_budget(client_factory: ClientFactory, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, security={"api_keys": ["a", "b"], "requests_per_minute": RATE})
    client = client_factory(settings=settings)

    def burst(key: str, n: int) -> list[int]:
        return [
            client.post("/api/emotion", json=EMOTION_BODY, headers={"Authorization": f"Bearer {key}"}).status_code
            for _ in range(n)
        ]

    assert burst("a", RATE + 3) == [200] * RATE + [429] * 3
    assert burst("b", RATE + 1) == [200] * RATE + [429]
    assert_error(client.post("/api/emotion", json=EMOTION_BODY, headers={"X-API-Key": "c"}), 401, "unauthorized")


def test_concurrent_burst_allows_exactly_the_limit(tmp_path: Path) -> None:
    """Twenty requests at once through a real server: exactly five pass, however they interleave."""
    security = {"api_key": "k", "requests_per_minute": RATE}
    with serve_fakes(tmp_path, fake_engines(), security=security) as (url, _app):
        with httpx.Client(base_url=url, headers={"X-API-Key": "k"}, timeout=20) as http:
            with ThreadPoolExecutor(max_workers=10) as pool:
                responses = list(pool.map(lambda _i: http.post("/api/emotion", json=EMOTION_BODY), range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * RATE + [429] * (20 - RATE)
    for response in responses:
        if response.status_code == 429:
            assert_rate_limited(response)


def test_without_keys_the_limit_counts_per_client_address(tmp_path: Path) -> None:
    """Two client addresses on loopback (127.0.0.1 and 127.0.0.2, both local on Linux) against a real server."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("127.0.0.2 is not a local address here")
    with serve_fakes(tmp_path, fake_engines(), security={"requests_per_minute": RATE}) as (url, _app):
        clients = {
            address: httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=address), timeout=20)
            for address in ("127.0.0.1", "127.0.0.2")
        }
        try:
            first = [clients["127.0.0.1"].post("/api/emotion", json=EMOTION_BODY) for _ in range(RATE + 2)]
            second = [clients["127.0.0.2"].post("/api/emotion", json=EMOTION_BODY) for _ in range(RATE + 1)]
        finally:
            for http in clients.values():
                http.close()
    assert [r.status_code for r in first] == [200] * RATE + [429] * 2
    assert [r.status_code for r in second] == [200] * RATE + [429]
    assert_rate_limited(first[-1])


def test_rest_limit_is_shared_by_two_apps_on_one_redis(
    redis_prefix: str, client_factory: ClientFactory, tmp_path: Path
) -> None:
    settings = {"security": {"api_key": "k", "requests_per_minute": RATE}, "redis_url": REDIS_URL}
    one = client_factory(settings=settings_in(tmp_path, "one", **settings))
    two = client_factory(settings=settings_in(tmp_path, "two", **settings))
    assert isinstance(one.app.state.services.limits, RedisLimits)  # type: ignore[attr-defined]
    responses = [
        (one if i % 2 else two).post("/api/emotion", json=EMOTION_BODY, headers={"X-API-Key": "k"}) for i in range(12)
    ]
    assert [r.status_code for r in responses] == [200] * RATE + [429] * (12 - RATE)  # 5 in all, not 5 each
    for response in responses[RATE:]:
        assert_rate_limited(response)


# --- WebSocket connection cap ---------------------------------------------------------------------------------


def test_the_third_socket_is_refused_with_1013_and_a_freed_slot_is_reused(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    client = client_factory(settings=make_settings(tmp_path, server={"max_connections": 2}))
    with ExitStack() as stack:
        first = stack.enter_context(client.websocket_connect("/ws/voice"))
        expect_ready(first)
        with client.websocket_connect("/ws/voice") as second:
            expect_ready(second)
            expect_refused_busy(client)
            wait_for_connections(client, 2)  # the refused socket never held a slot
        wait_for_connections(client, 1)
        with client.websocket_connect("/ws/voice") as third:
            expect_ready(third)
            expect_refused_busy(client)
    wait_for_connections(client, 0)


def test_the_connection_cap_is_global_across_two_apps_on_one_redis(
    redis_prefix: str, client_factory: ClientFactory, tmp_path: Path
) -> None:
    settings = {"server": {"max_connections": 2}, "redis_url": REDIS_URL}
    one = client_factory(settings=settings_in(tmp_path, "one", **settings))
    two = client_factory(settings=settings_in(tmp_path, "two", **settings))
    with ExitStack() as stack:
        a = stack.enter_context(one.websocket_connect("/ws/voice"))
        expect_ready(a)
        with one.websocket_connect("/ws/voice") as b:
            expect_ready(b)
            wait_for_connections(two, 2)  # the other app counts both
            expect_refused_busy(two)
            expect_refused_busy(one)
        wait_for_connections(two, 1)
        with two.websocket_connect("/ws/voice") as c:
            expect_ready(c)
            expect_refused_busy(one)
    wait_for_connections(one, 0)


# --- the limit stores themselves ------------------------------------------------------------------------------


async def test_memory_slots_never_exceed_the_cap_under_concurrent_acquires() -> None:
    limits = MemoryLimits(requests_per_minute=RATE, max_connections=7)
    slots = await asyncio.gather(*(limits.acquire_connection() for _ in range(50)))
    taken = [s for s in slots if s is not None]
    assert len(taken) == 7 and len(set(taken)) == 7
    assert await limits.active_connections() == 7
    await limits.release_connection(taken[0])
    assert await limits.acquire_connection() is not None
    assert await limits.acquire_connection() is None


async def test_memory_rate_window_counts_per_key() -> None:
    limits = MemoryLimits(requests_per_minute=RATE, max_connections=1)
    results = [await limits.hit("a") for _ in range(RATE + 1)]
    assert results[:RATE] == [None] * RATE
    retry_after = results[RATE]
    assert retry_after is not None and 0 < retry_after <= 60
    assert await limits.hit("b") is None


async def test_memory_limits_stay_bounded_under_many_keys() -> None:
    limits = MemoryLimits(requests_per_minute=RATE, max_connections=1, max_keys=100)
    for i in range(1000):
        await limits.hit(f"k{i}")
    assert len(limits._windows) == 100


async def test_make_limits_picks_redis_only_when_configured() -> None:
    assert isinstance(make_limits(None, RATE, 2), MemoryLimits)
    shared = make_limits(REDIS_URL, RATE, 2)  # no connection is made until it is used
    assert isinstance(shared, RedisLimits)
    await shared.close()


@pytest.fixture
async def redis_limits() -> Any:
    require_server(REDIS_URL, "Redis")
    prefix = f"test-limits-{uuid.uuid4().hex[:10]}"
    limits = RedisLimits(REDIS_URL, requests_per_minute=RATE, max_connections=7, prefix=prefix)
    yield limits
    keys = [key async for key in limits._redis.scan_iter(f"{prefix}:*")]
    if keys:
        await limits._redis.delete(*keys)
    await limits.close()


async def test_redis_slots_never_exceed_the_cap_under_concurrent_acquires(redis_limits: RedisLimits) -> None:
    other = RedisLimits(REDIS_URL, RATE, 7, prefix=redis_limits._prefix)  # a second worker on the same keys
    try:
        slots = await asyncio.gather(*((redis_limits if i % 2 else other).acquire_connection() for i in range(50)))
        taken = [s for s in slots if s is not None]
        assert len(taken) == 7 and len(set(taken)) == 7
        assert await other.active_connections() == 7
        await redis_limits.release_connection(taken[0])
        assert await other.acquire_connection() is not None
        assert await redis_limits.acquire_connection() is None
    finally:
        await other.close()


async def test_redis_drops_a_stale_slot_but_keeps_a_fresh_one(redis_limits: RedisLimits) -> None:
    key = redis_limits._conn_key
    now_ms = int(time.time() * 1000)
    fresh = {f"alive-{i}": now_ms for i in range(6)}
    await redis_limits._redis.zadd(key, {"dead-worker": now_ms - HEARTBEAT_EXPIRY_MS - 5_000, **fresh})
    assert await redis_limits.active_connections() == 6  # the stale one is not counted
    slot = await redis_limits.acquire_connection()  # 7th slot: fits only because the stale one is dropped
    assert slot is not None
    assert await redis_limits._redis.zscore(key, "dead-worker") is None
    assert await redis_limits.acquire_connection() is None  # the fresh ones are kept
    await redis_limits._redis.zadd(key, {slot: now_ms - HEARTBEAT_EXPIRY_MS - 5_000})
    await redis_limits.heartbeat(slot)  # a heartbeat makes an old slot fresh again
    assert (await redis_limits._redis.zscore(key, slot)) >= now_ms
    await redis_limits.heartbeat("never-acquired")  # heartbeats never create slots (xx)
    assert await redis_limits._redis.zscore(key, "never-acquired") is None


async def test_redis_rate_window_counts_per_key(redis_limits: RedisLimits) -> None:
    results = [await redis_limits.hit("a") for _ in range(RATE + 1)]
    assert results[:RATE] == [None] * RATE
    retry_after = results[RATE]
    assert retry_after is not None and 0 < retry_after <= 60
    assert await redis_limits.hit("b") is None


# --- request body limits --------------------------------------------------------------------------------------


def big_json(kb: int) -> bytes:
    return b'{"text": "' + b"a" * (kb * 1024) + b'"}'


def test_json_body_over_the_limit_is_413_with_content_length(client_factory: ClientFactory, tmp_path: Path) -> None:
    client = client_factory(settings=make_settings(tmp_path, server={"max_json_kb": 1, "max_text_chars": 5000}))
    assert client.post("/api/emotion", json={"text": "a" * 900}).status_code == 200  # under the limit: fine
    response = client.post("/api/emotion", content=big_json(2), headers={"Content-Type": "application/json"})
    assert response.request.headers["content-length"] == str(len(big_json(2)))
    assert_error(response, 413, "payload_too_large")


def test_chunked_json_body_over_the_limit_is_413(client_factory: ClientFactory, tmp_path: Path) -> None:
    client = client_factory(settings=make_settings(tmp_path, server={"max_json_kb": 1}))
    body = big_json(8)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 512):
            yield body[i : i + 512]

    response = client.post("/api/text-chat", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "payload_too_large")

    def small() -> Iterator[bytes]:
        yield b'{"text": '
        yield b'"hello"}'

    ok = client.post("/api/emotion", content=small(), headers={"Content-Type": "application/json"})
    assert ok.status_code == 200, ok.text  # a chunked body under the limit still works


def test_an_upload_over_max_upload_mb_is_413_before_transcription(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    engines = fake_engines()
    client = client_factory(engines, settings=make_settings(tmp_path, server={"max_upload_mb": 0.05}))
    stt = engines.stt
    assert isinstance(stt, FakeSTT)
    calls = stt.calls
    ok = client.post("/api/transcribe", files={"file": ("a.wav", wav_bytes(1.0, 8000), "audio/wav")})  # 16 KB
    assert ok.status_code == 200, ok.text
    assert stt.calls == calls + 1
    # far over the limit: refused by the body limit from the declared length, before the form is parsed
    assert_error(
        client.post("/api/transcribe", files={"file": ("a.wav", b"\0" * 400_000, "audio/wav")}),
        413,
        "payload_too_large",
    )
    # over the limit but inside the room kept for the form's headers: refused by the route, before decoding
    assert_error(
        client.post("/api/transcribe", files={"file": ("a.wav", wav_bytes(3.0, 16000)[:80_000], "audio/wav")}),
        413,
        "payload_too_large",
    )

    def chunked_form() -> Iterator[bytes]:
        yield b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        yield b"Content-Type: audio/wav\r\n\r\n"
        for _ in range(20):
            yield b"\0" * 20_000
        yield b"\r\n--XyZ--\r\n"

    chunked = client.post(
        "/api/transcribe", content=chunked_form(), headers={"Content-Type": "multipart/form-data; boundary=XyZ"}
    )
    assert "content-length" not in chunked.request.headers
    assert_error(chunked, 413, "payload_too_large")
    assert stt.calls == calls + 1  # nothing over the limit reached the model


def test_a_recording_over_max_audio_seconds_is_413_audio_too_long(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    engines = fake_engines()
    client = client_factory(engines, settings=make_settings(tmp_path, server={"max_audio_seconds": 2}))
    stt = engines.stt
    assert isinstance(stt, FakeSTT)
    calls = stt.calls
    ok = client.post("/api/transcribe", files={"file": ("ok.wav", wav_bytes(1.5), "audio/wav")})
    assert ok.status_code == 200 and ok.json()["duration_s"] == pytest.approx(1.5, abs=0.01)
    response = client.post("/api/transcribe", files={"file": ("long.wav", wav_bytes(5.0), "audio/wav")})
    assert_error(response, 413, "audio_too_long")
    flac = io.BytesIO()
    sf.write(flac, np.zeros(16000 * 5, dtype=np.float32), 16000, format="FLAC")
    assert_error(
        client.post("/api/transcribe", files={"file": ("long.flac", flac.getvalue(), "audio/flac")}),
        413,
        "audio_too_long",
    )
    assert stt.calls == calls + 1


def test_an_api_key_in_the_url_is_refused_with_400(client_factory: ClientFactory, tmp_path: Path) -> None:
    client = client_factory(settings=make_settings(tmp_path, security={"api_key": "k"}))
    assert_error(client.post("/api/text-chat?api_key=k", json={"text": "hi"}), 400, "api_key_in_url")
    assert_error(
        client.get("/api/sessions", params={"api_key": "k"}, headers={"X-API-Key": "k"}), 400, "api_key_in_url"
    )
    assert client.get("/api/sessions", headers={"X-API-Key": "k"}).status_code == 200
