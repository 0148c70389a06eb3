"""VoiceSession: one per WebSocket connection, wiring the three stages of the voice pipeline together.

    Transport (socket in/out, resampling, pacing)  →  TurnDetection (VAD + end-of-turn policy)
        →  ReplyPipeline (STT → emotion → safety → LLM → sentences → TTS)  →  Transport

Four tasks run in one TaskGroup: the receiver, the VAD, the turn worker and the sender. Each client message is
handled inside an error boundary (a bad message or a failing stage becomes an ``error`` event; the socket stays
usable). When the client leaves, goes idle or stops reading, or the server shuts down, the receiver or sender
raises ``ClientGone``: the group cancels the others, and the turn lifecycle stores whatever turn was in flight.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from fastapi import WebSocket

from backend.core.exceptions import ClarityError
from backend.models import messages as m
from backend.services.acoustic_turn import acoustic_end_scorer
from backend.services.container import Services
from backend.services.reply_pipeline import ReplyPipeline
from backend.services.turn_detection import TurnDetection
from backend.services.voice_transport import AudioIn, ClientGone, Transport

log = logging.getLogger(__name__)


class VoiceSession:
    def __init__(self, ws: WebSocket, services: Services, session_id: str, owner: str | None = None) -> None:
        self.services = services
        self.settings = services.settings
        self.session_id = session_id
        self.owner = owner
        self.transport = Transport(ws, self.settings.server, services.tts.native_rate)
        models = services.models
        self.detection = TurnDetection(
            self.settings.vad,
            models.engines.vad,
            models.vad_runner,
            to_16k=self.transport.to_16k,
            transcribe=services.stt.transcribe,
            sentence_end=services.llm.sentence_end_probability,
            on_partial=lambda text: self.transport.emit(m.PartialTranscript(text=text)),
            on_speech=self._on_speech,
            on_error=self.error,
            stt_busy=lambda: models.stt_runner.pending > 0,
            acoustic_end=acoustic_end_scorer(models),
        )
        self.reply = ReplyPipeline(services, self.transport, lambda: self.session_id)
        self._stop: asyncio.Future[ClientGone] | None = None
        self.finished = asyncio.Event()  # set when run() returns (shutdown waits on it)

    async def error(self, code: str, message: str, turn_id: str | None = None) -> None:
        self.services.telemetry.errors.labels(code).inc()
        await self.transport.emit(m.Error(code=code, message=message, turn_id=turn_id))

    def _ready(self) -> m.Ready:
        t = self.transport
        return m.Ready(session_id=self.session_id, input_sample_rate=t.input_rate, output_sample_rate=t.output_rate)

    async def run(self) -> ClientGone:
        """Serve the connection until it ends; returns why it ended (with the close code to send, if any)."""
        self._stop = asyncio.get_running_loop().create_future()
        await self.transport.emit(self._ready())
        ended = ClientGone("ended")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.transport.sender(), name="ws-sender")
                group.create_task(self.detection.run(), name="ws-vad")
                group.create_task(self._turn_worker(), name="ws-turns")
                group.create_task(self._receiver(), name="ws-receiver")
                group.create_task(self._wait_stop(), name="ws-stop")
        except* ClientGone as gone:
            first = gone.exceptions[0]
            if isinstance(first, ClientGone):
                ended = first
        finally:
            self.detection.close()
            self.finished.set()
        return ended

    def stop(self, reason: str, close_code: int) -> None:
        """End the session from outside (server shutdown): the in-flight turn is stored, the socket closed."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(ClientGone(reason, close_code))

    async def _wait_stop(self) -> None:
        if self._stop is not None:
            raise await self._stop

    # ---- receiving ------------------------------------------------------------------------------------------
    async def _receiver(self) -> None:
        while True:
            message = await self.transport.receive()
            try:
                await self._handle(message)
            except ClarityError as exc:
                await self.error(exc.code, exc.detail)
            except Exception:
                error_id = uuid.uuid4().hex[:8]
                log.exception("message handling failed (error_id=%s)", error_id)
                await self.error("internal_error", f"that message could not be handled (error_id {error_id})")

    async def _handle(self, message: AudioIn | m.ClientMessage | m.Error) -> None:
        if isinstance(message, AudioIn):
            if message.data:
                self.detection.push(message)
            return
        if isinstance(message, m.Error):
            await self.error(message.code, message.message)
            return
        await self.detection.drained()  # control messages act after the audio sent before them
        if isinstance(message, m.ConfigMessage):
            await self._on_config(message)
        elif isinstance(message, m.EndOfSpeechMessage):
            await self.detection.flush(timed_out=False)
        elif isinstance(message, m.InterruptMessage):
            self.reply.interrupt("client")
        elif isinstance(message, m.PlaybackMessage):
            self.reply.ack_playback(message.played_ms, message.turn_id)
        elif isinstance(message, m.AuthMessage):
            await self.error("already_authenticated", "this connection is already authorized")
        else:
            await self.transport.emit(m.Pong())

    async def _on_config(self, msg: m.ConfigMessage) -> None:
        if msg.sample_rate is not None:
            self.transport.set_input_rate(msg.sample_rate)
        if msg.output_sample_rate is not None:
            self.transport.output_rate = msg.output_sample_rate
        if msg.session_id is not None and msg.session_id != self.session_id:
            if not await self.services.sessions.exists(msg.session_id, owner=self.owner):
                await self.error("session_not_found", f"session {msg.session_id!r} not found; kept the current one")
                return
            self.session_id = msg.session_id
        await self.transport.emit(self._ready())

    def _on_speech(self, speech_run_ms: float) -> None:
        if speech_run_ms >= self.settings.vad.barge_in_min_ms:
            self.reply.interrupt("speech")

    # ---- turns ----------------------------------------------------------------------------------------------
    async def _turn_worker(self) -> None:
        while True:
            pending = await self.detection.utterances.get()
            turn_id = uuid.uuid4().hex[:12]
            try:
                await self.reply.run(pending, turn_id)
            except ClarityError as exc:
                await self._failed(turn_id, exc.code, exc.detail)
            except Exception:
                error_id = uuid.uuid4().hex[:8]
                log.exception("turn failed (error_id=%s)", error_id)
                detail = f"something went wrong with this turn (error_id {error_id})"
                await self._failed(turn_id, "internal_error", detail)

    async def _failed(self, turn_id: str, code: str, message: str) -> None:
        await self.error(code, message, turn_id)
        await self.transport.emit(m.TurnEnd(turn_id=turn_id, outcome="failed"))
        await self.transport.forget_turn(turn_id)
