"""Transport stage of the voice pipeline: the WebSocket in and out.

In: each message as a typed event (PCM16 audio resampled to 16 kHz float, or a parsed control message), with the
idle timeout and the frame size cap. Out: one sender, the only writer to the socket. Every outgoing item is
tagged with its turn; reply audio is paced to real time plus a small lead (``AUDIO_LEAD_MS``), so the client never
holds more than that of unplayed audio, and once a turn is cancelled whatever of it is still queued is dropped:
barge-in stops the voice within one frame and no stale audio ever follows an ``interrupted`` event. A client
that stops reading for ``send_timeout_s`` is dropped (memory stays bounded: the outbox has a fixed size).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr
from fastapi import WebSocket, WebSocketDisconnect

from backend.config import ServerSettings
from backend.core.audio_utils import STT_RATE, FloatAudio, pcm16_bytes_to_float
from backend.models import messages as m

OUTBOX_SIZE = 256
AUDIO_LEAD_MS = 400.0  # reply audio sent ahead of real time: rides out network jitter, little to drop on barge-in
_FORGET = "\0forget"  # outbox marker: the turn's state can go (see forget_turn)
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_RESTART = 1012


class ClientGone(Exception):
    """The client closed the socket, went idle, or stopped reading: the session ends."""

    def __init__(self, reason: str, close_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


@dataclass(slots=True)
class AudioIn:
    data: bytes
    arrived: float


@dataclass(slots=True)
class _TurnPace:
    started: float  # wall time the turn's first audio frame was sent
    sent_ms: float = 0.0  # audio of the turn sent so far


class Transport:
    def __init__(self, ws: WebSocket, settings: ServerSettings, output_rate: int) -> None:
        self.ws = ws
        self.settings = settings
        self.input_rate = STT_RATE
        self.output_rate = output_rate
        self._resampler: Any = None
        self.outbox: asyncio.Queue[tuple[str | None, str | bytes | asyncio.Future[None], float]] = asyncio.Queue(
            maxsize=OUTBOX_SIZE
        )
        self.cancelled_turns: set[str] = set()
        self._pace: dict[str, _TurnPace] = {}
        self.first_frame_wall: dict[str, float] = {}
        self.last_client_message = time.monotonic()

    # ---- in -------------------------------------------------------------------------------------------------
    def set_input_rate(self, rate: int) -> None:
        if rate != self.input_rate:
            self.input_rate = rate
            self._resampler = None if rate == STT_RATE else soxr.ResampleStream(rate, STT_RATE, 1, "float32")

    def to_16k(self, data: bytes) -> FloatAudio:
        """PCM16 at the client's declared rate → 16 kHz float32 (blocking: called in the VAD worker)."""
        audio = pcm16_bytes_to_float(data)
        if self._resampler is not None:
            audio = np.asarray(self._resampler.resample_chunk(audio), dtype=np.float32)
        return audio

    async def receive(self) -> AudioIn | m.ClientMessage | m.Error:
        """The next client message; raises ClientGone on close, idle timeout or an oversize frame."""
        try:
            message = await asyncio.wait_for(self.ws.receive(), self.settings.idle_timeout_s)
        except TimeoutError as exc:
            raise ClientGone("idle_timeout", CLOSE_GOING_AWAY) from exc
        self.last_client_message = time.monotonic()
        if message["type"] == "websocket.disconnect":
            raise ClientGone("server_shutdown" if message.get("code") == CLOSE_RESTART else "client_closed")
        data, text = message.get("bytes"), message.get("text")
        size = len(data) if data is not None else len((text or "").encode())
        if size > self.settings.max_frame_kb * 1024:
            raise ClientGone("frame_too_big", CLOSE_TOO_BIG)
        if data is not None:
            if len(data) % 2:
                return m.Error(
                    code="invalid_audio", message=f"binary frames must be PCM16 (even byte count); got {len(data)}"
                )
            return AudioIn(data, time.monotonic())
        return m.parse_client_message(text or "")

    # ---- out ------------------------------------------------------------------------------------------------
    async def emit(self, message: m.ServerMessage, turn_id: str | None = None) -> None:
        await self.outbox.put((turn_id, message.model_dump_json(), 0.0))

    async def audio(self, turn_id: str, frame: bytes, duration_ms: float) -> None:
        await self.outbox.put((turn_id, frame, duration_ms))

    async def all_sent(self, turn_id: str) -> None:
        """Wait until everything queued so far for this turn has gone out (its audio is then at most
        ``AUDIO_LEAD_MS`` ahead of the listener), or was dropped by a cancel."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.outbox.put((turn_id, done, 0.0))
        await done

    def cancel_turn(self, turn_id: str) -> None:
        """Drop everything of this turn still queued (and anything it queues later)."""
        self.cancelled_turns.add(turn_id)

    async def forget_turn(self, turn_id: str) -> None:
        """The turn is over: its state goes once the sender has passed everything queued for it (a cancelled
        turn's frames still in the queue must be dropped, not sent, so the cancel outlives the turn until then)."""
        await self.outbox.put((turn_id, _FORGET, 0.0))

    def _forget(self, turn_id: str) -> None:
        self.cancelled_turns.discard(turn_id)
        self._pace.pop(turn_id, None)
        self.first_frame_wall.pop(turn_id, None)

    def played_ms(self, turn_id: str) -> float:
        """How much of the turn's audio the client has played, assuming real-time playback from the first frame."""
        first = self.first_frame_wall.get(turn_id)
        return 0.0 if first is None else 1000 * (time.monotonic() - first)

    async def sender(self) -> None:
        while True:
            turn_id, payload, duration_ms = await self.outbox.get()
            if isinstance(payload, asyncio.Future):
                if not payload.done():
                    payload.set_result(None)
                continue
            if payload is _FORGET:
                if turn_id is not None:
                    self._forget(turn_id)
                continue
            if turn_id is not None and turn_id in self.cancelled_turns:
                continue
            if isinstance(payload, bytes) and turn_id is not None:
                await self._pace_audio(turn_id, duration_ms)
                if turn_id in self.cancelled_turns:  # cancelled while waiting for its slot
                    continue
            await self._send(payload)

    async def _pace_audio(self, turn_id: str, duration_ms: float) -> None:
        pace = self._pace.get(turn_id)
        now = time.monotonic()
        if pace is None:
            pace = self._pace[turn_id] = _TurnPace(started=now)
            self.first_frame_wall[turn_id] = now
        due = pace.started + (pace.sent_ms - AUDIO_LEAD_MS) / 1000
        if due > now:
            await asyncio.sleep(due - now)
        pace.sent_ms += duration_ms

    async def _send(self, payload: str | bytes) -> None:
        send: Callable[[Any], Any] = self.ws.send_bytes if isinstance(payload, bytes) else self.ws.send_text
        try:
            await asyncio.wait_for(send(payload), self.settings.send_timeout_s)
        except TimeoutError as exc:
            raise ClientGone("slow_client", CLOSE_POLICY) from exc
        except (RuntimeError, OSError, WebSocketDisconnect) as exc:  # the socket closed under us
            raise ClientGone("client_closed") from exc
