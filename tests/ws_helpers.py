"""Helpers to drive /ws/voice from tests and collect what the server sends."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.testclient import WebSocketTestSession
from starlette.types import Message

from tests.fakes import pcm_bytes, silence, tone


@dataclass
class Received:
    events: list[dict[str, Any]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # event types, and "<audio>" for binary frames
    audio: list[bytes] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of(kind)
        assert len(found) == 1, f"expected one {kind!r}, got {len(found)}: {self.order}"
        return found[0]


RECEIVE_TIMEOUT_S = 20.0  # a missing event fails the test instead of hanging it


def _receive(ws: WebSocketTestSession, timeout_s: float, waiting_for: str) -> Message:
    async def with_timeout() -> Message:
        with anyio.fail_after(timeout_s):
            return await ws._send_rx.receive()

    try:
        return ws.portal.call(with_timeout)
    except TimeoutError:
        raise AssertionError(f"nothing arrived for {timeout_s:g} s while waiting for {waiting_for}") from None


def _take(ws: WebSocketTestSession, got: Received, waiting_for: str) -> str:
    """Receive one message into ``got``; returns its type ("<audio>" for binary frames)."""
    message = _receive(ws, RECEIVE_TIMEOUT_S, waiting_for)
    if message.get("bytes") is not None:
        got.audio.append(message["bytes"])
        got.order.append("<audio>")
        return "<audio>"
    if message.get("text") is None:
        raise AssertionError(f"socket closed while waiting for {waiting_for}: {message}")
    event = json.loads(message["text"])
    got.events.append(event)
    got.order.append(event["type"])
    return str(event["type"])


def receive_until(ws: WebSocketTestSession, stop: str, into: Received | None = None) -> Received:
    got = into or Received()
    while _take(ws, got, repr(stop)) != stop:
        pass
    return got


def receive_audio_frames(ws: WebSocketTestSession, got: Received, frames: int = 2) -> Received:
    while got.order.count("<audio>") < frames:
        _take(ws, got, f"{frames} audio frames")
    return got


def speak(ws: WebSocketTestSession, seconds: float = 1.0, trailing_silence: float = 1.0, chunk_s: float = 0.1) -> None:
    """Send 'speech' (tone) then silence, in chunks, faster than real time."""
    audio = [*([tone(chunk_s)] * int(seconds / chunk_s)), *([silence(chunk_s)] * int(trailing_silence / chunk_s))]
    for chunk in audio:
        ws.send_bytes(pcm_bytes(chunk))


def one_turn(ws: WebSocketTestSession) -> Received:
    speak(ws)
    return receive_until(ws, "turn_end")
