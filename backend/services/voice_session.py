"""VoiceSession: one per WebSocket connection. Owns the connection's endpointer, queues and tasks.

Tasks: a receiver (audio + control messages), a VAD task (endpointing, barge-in; it takes all audio that
arrived since its last run), a turn worker (STT -> emotion -> safety -> LLM stream -> guarded sentences -> TTS)
and a sender (the only writer to the socket). Every outgoing item is tagged with its
turn; once a turn is interrupted the sender drops whatever of it is still queued, so no stale audio ever
follows an ``interrupted`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from typing import Any

import numpy as np
import soxr
from fastapi import WebSocket

from backend.core.audio_utils import STT_RATE, FloatAudio, frames, pcm16_bytes_to_float
from backend.core.exceptions import ClarityError
from backend.models import messages as m
from backend.services.container import Services
from backend.services.endpointing import Endpointer, Utterance
from backend.services.mentor_service import PreparedTurn
from backend.services.reply_stream import (
    ActiveReply,
    SpokenSegment,
    aiter_items,
    first_error,
    ms_between,
    split_sentences,
)
from backend.services.turn_taking import PendingUtterance, TurnTaker

log = logging.getLogger(__name__)
OUTBOX_SIZE = 512


class VoiceSession:
    def __init__(self, ws: WebSocket, services: Services, session_id: str) -> None:
        self.ws = ws
        self.services = services
        self.settings = services.settings
        self.session_id = session_id
        self.input_rate = STT_RATE
        self.output_rate = services.tts.native_rate
        vad = services.models.engines.vad
        self.endpointer = Endpointer(self.settings.vad, vad.new_stream(), vad.frame_samples)
        self._resampler: Any = None
        self.outbox: asyncio.Queue[tuple[str | None, str | bytes]] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self.cancelled_turns: set[str] = set()
        self.utterances: asyncio.Queue[PendingUtterance] = asyncio.Queue(maxsize=8)
        self.active: ActiveReply | None = None
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=4096)
        self._first_frame_wall: dict[str, float] = {}
        self._audio_in: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
        self.turns = TurnTaker(
            self.settings.vad,
            self.endpointer,
            services.stt.transcribe,
            services.llm.sentence_end_probability,
            lambda text: self.emit(m.PartialTranscript(text=text)),
        )

    # ---- plumbing -------------------------------------------------------------------------------------------
    async def emit(self, message: m.ServerMessage, turn_id: str | None = None) -> None:
        await self.outbox.put((turn_id, message.model_dump_json()))

    async def error(self, code: str, message: str, turn_id: str | None = None) -> None:
        self.services.telemetry.errors.labels(code).inc()
        await self.emit(m.Error(code=code, message=message, turn_id=turn_id))

    async def run(self) -> None:
        await self.emit(self._ready())
        sender = asyncio.create_task(self._sender(), name="ws-sender")
        vad = asyncio.create_task(self._vad_loop(), name="ws-vad")
        worker = asyncio.create_task(self._turn_worker(), name="ws-turns")
        try:
            await self._receiver()
        finally:
            self._interrupt_now("client")  # nothing more to say to a closed socket
            self.turns.cancel()
            for task in (worker, sender, vad):
                task.cancel()
            for task in (worker, sender, vad):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _ready(self) -> m.Ready:
        return m.Ready(
            session_id=self.session_id, input_sample_rate=self.input_rate, output_sample_rate=self.output_rate
        )

    async def _sender(self) -> None:
        while True:
            turn_id, payload = await self.outbox.get()
            if turn_id is not None and turn_id in self.cancelled_turns:
                continue
            if isinstance(payload, bytes):
                if turn_id is not None and turn_id not in self._first_frame_wall:
                    self._first_frame_wall[turn_id] = time.monotonic()
                await self.ws.send_bytes(payload)
            else:
                await self.ws.send_text(payload)

    # ---- receiving ------------------------------------------------------------------------------------------
    async def _receiver(self) -> None:
        while True:
            timeout = self.settings.vad.no_audio_timeout_s if self.endpointer.triggered else None
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout)
            except TimeoutError:
                await self._audio_in.join()
                await self._flush(timed_out=True)
                continue
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self._on_audio(message["bytes"])
            elif message.get("text") is not None:
                await self._audio_in.join()  # control messages act after the audio sent before them
                await self._on_text(message["text"])

    async def _on_text(self, raw: str) -> None:
        msg = m.parse_client_message(raw)
        if isinstance(msg, m.Error):
            await self.error(msg.code, msg.message)
        elif isinstance(msg, m.ConfigMessage):
            await self._on_config(msg)
        elif isinstance(msg, m.EndOfSpeechMessage):
            await self._flush(timed_out=False)
        elif isinstance(msg, m.InterruptMessage):
            self._interrupt_now("client")
        elif isinstance(msg, m.PlaybackMessage):
            if self.active is not None and msg.turn_id in (None, self.active.turn_id):
                self.active.played_ms_ack = msg.played_ms
        else:
            await self.emit(m.Pong())

    async def _on_config(self, msg: m.ConfigMessage) -> None:
        if msg.sample_rate is not None and msg.sample_rate != self.input_rate:
            self.input_rate = msg.sample_rate
            self._resampler = (
                None if msg.sample_rate == STT_RATE else soxr.ResampleStream(msg.sample_rate, STT_RATE, 1, "float32")
            )
        if msg.output_sample_rate is not None:
            self.output_rate = msg.output_sample_rate
        if msg.session_id is not None and msg.session_id != self.session_id:
            if not await self.services.sessions.exists(msg.session_id):
                await self.error("session_not_found", f"session {msg.session_id!r} not found; kept the current one")
                return
            self.session_id = msg.session_id
        await self.emit(self._ready())

    def _to_16k(self, data: bytes) -> FloatAudio:
        audio = pcm16_bytes_to_float(data)
        if self._resampler is not None:
            audio = np.asarray(self._resampler.resample_chunk(audio), dtype=np.float32)
        return audio

    async def _on_audio(self, data: bytes) -> None:
        if len(data) % 2:
            await self.error("invalid_audio", f"binary frames must be PCM16 (even byte count); got {len(data)} bytes")
            return
        if not data:
            return
        self._audio_in.put_nowait((data, time.monotonic()))

    async def _vad_loop(self) -> None:
        """Feeds the VAD with everything that arrived since its last run, in one job: a session whose VAD falls
        behind (a loaded server) catches up in one step instead of queueing one job per 20 ms chunk."""
        while True:
            batch = [await self._audio_in.get()]
            while not self._audio_in.empty():
                batch.append(self._audio_in.get_nowait())
            try:
                await self._feed_vad(batch)
            except ClarityError as exc:
                await self.error(exc.code, exc.detail)
            finally:
                for _ in batch:
                    self._audio_in.task_done()

    async def _feed_vad(self, batch: list[tuple[bytes, float]]) -> None:
        start = self.endpointer.position

        def process() -> Any:
            parts = [self._to_16k(data) for data, _ in batch]
            ends = np.cumsum([part.size for part in parts]) + start
            return self.endpointer.feed(np.concatenate(parts)), ends

        result, ends = await self.services.models.vad_runner.run(process)
        self._arrivals.extend((int(end), arrived) for end, (_, arrived) in zip(ends, batch, strict=True))
        reply = self.active
        if (
            reply is not None
            and reply.interrupted is None
            and result.speech_run_ms >= self.settings.vad.barge_in_min_ms
        ):
            self._interrupt_now("speech")
        for utterance in result.utterances:
            await self._queue_utterance(utterance)
        self.turns.on_audio(stt_busy=self.services.models.stt_runner.pending > 0 or not self.utterances.empty())

    async def _flush(self, *, timed_out: bool) -> None:
        had_audio = self.endpointer.heard_audio_since_emit
        utterance = self.endpointer.flush()
        if utterance is not None:
            await self._queue_utterance(utterance, fallback_wall=None if timed_out else time.monotonic())
        elif had_audio and not timed_out:
            await self.error("no_speech", "no speech detected")

    def _wall_for_sample(self, sample: int) -> float:
        for position, wall in self._arrivals:
            if position >= sample:
                return wall
        return time.monotonic()

    async def _queue_utterance(self, utterance: Utterance, fallback_wall: float | None = None) -> None:
        wall = self._wall_for_sample(utterance.speech_end_sample)
        if fallback_wall is not None:
            wall = min(wall, fallback_wall)
        pause = self.turns.take(utterance)
        try:
            self.utterances.put_nowait(PendingUtterance(utterance, wall, pause))
        except asyncio.QueueFull:
            await self.error("busy", "too many utterances are waiting; this one was dropped, please repeat it")

    # ---- turns ----------------------------------------------------------------------------------------------
    async def _turn_worker(self) -> None:
        while True:
            pending = await self.utterances.get()
            turn_id = uuid.uuid4().hex[:12]
            try:
                await self._run_turn(pending, turn_id)
            except ClarityError as exc:
                await self.error(exc.code, exc.detail, turn_id)
            except Exception:
                error_id = uuid.uuid4().hex[:8]
                log.exception("turn failed (error_id=%s)", error_id)
                await self.error(
                    "internal_error", f"something went wrong with this turn (error_id {error_id})", turn_id
                )

    async def _run_turn(self, pending: PendingUtterance, turn_id: str) -> None:
        audio = pending.utterance.audio
        metrics = m.Metrics(turn_id=turn_id, user_audio_seconds=round(audio.size / STT_RATE, 3))
        await self.emit(m.Status(message="Transcribing...", turn_id=turn_id))
        t0 = time.monotonic()
        # The pause's transcript covers every word when no speech followed it: no second STT pass.
        early = await pending.pause_transcript.result() if pending.pause_transcript is not None else None
        transcription = early if early is not None else await self.services.stt.transcribe(audio)
        metrics.transcript_reused = early is not None
        metrics.stt_ms = round(1000 * (time.monotonic() - t0), 1)
        text = transcription.text.strip()
        if not text:
            await self.error("no_speech", "no speech detected", turn_id)
            return
        await self.emit(m.Transcript(text=text, turn_id=turn_id, language=transcription.language))
        await self.emit(m.Status(message="Analyzing emotion...", turn_id=turn_id))
        t0 = time.monotonic()
        mentor = self.services.mentor
        mentor.check_length(text)
        prepared = await mentor.prepare(self.session_id, text, audio, turn_id=turn_id)
        metrics.emotion_ms = round(1000 * (time.monotonic() - t0), 1)
        await self.emit(m.EmotionEvent(data=prepared.emotion, turn_id=turn_id))
        if prepared.crisis_category:
            await self.emit(m.Safety(category=prepared.crisis_category, turn_id=turn_id))
        await self.emit(m.Status(message="Generating response...", turn_id=turn_id))

        reply = ActiveReply(turn_id=turn_id, llm_start=time.monotonic())
        self.active = reply
        reply.task = asyncio.create_task(self._reply(prepared, reply))
        await asyncio.wait([reply.task])
        self.active = None
        if reply.task.cancelled() or reply.interrupted:
            played = reply.played_ms_ack
            if played is None:
                first = self._first_frame_wall.get(turn_id)
                played = 1000 * (time.monotonic() - first) if first is not None else 0.0
            heard = reply.heard_text(min(played, reply.audio_ms_queued))
            await self.emit(
                m.Interrupted(
                    turn_id=turn_id,
                    heard_text=heard,
                    reason="client" if reply.interrupted == "client" else "speech",
                )
            )
            await mentor.save_reply(prepared, heard, interrupted=True, turn_id=turn_id)
        else:
            exc = first_error(reply.task.exception())
            if exc is not None:
                if reply.text:  # keep what was produced: nothing the mentor said is lost
                    await mentor.save_reply(prepared, reply.text.strip(), interrupted=True, turn_id=turn_id)
                raise exc
            await mentor.save_reply(prepared, reply.text.strip(), turn_id=turn_id)
        first_frame = self._first_frame_wall.pop(turn_id, None)
        metrics.llm_first_token_ms = ms_between(reply.llm_first_token, reply.llm_start)
        metrics.llm_total_ms = ms_between(reply.llm_done, reply.llm_start)
        metrics.tts_first_audio_ms = reply.tts_first_audio_ms
        metrics.voice_to_voice_ms = ms_between(first_frame, pending.speech_end_wall)
        metrics.tokens = reply.tokens
        metrics.audio_seconds = round(reply.audio_ms_queued / 1000, 3)
        self.services.telemetry.observe_turn(metrics.model_dump(), interrupted=reply.interrupted is not None)
        await self.emit(metrics)
        await self.emit(m.TurnEnd(turn_id=turn_id, interrupted=reply.interrupted is not None))
        self.cancelled_turns.discard(turn_id)

    async def _reply(self, prepared: PreparedTurn, reply: ActiveReply) -> None:
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        turn_id = reply.turn_id

        async def write() -> None:
            buffer = ""
            chunked = False
            try:
                if prepared.crisis_reply is not None:
                    pieces: Any = aiter_items([prepared.crisis_reply + " "])
                else:
                    pieces = self.services.llm.stream(prepared.messages)
                guarded = prepared.crisis_reply is None

                async def say(sentence: str) -> bool:
                    """Guard, then show and speak one sentence; False when it was replaced (stop there)."""
                    safe = self.services.mentor.guard(sentence, self.session_id) if guarded else sentence
                    delta = (" " if reply.text else "") + safe
                    reply.text += delta
                    await self.emit(m.ResponseDelta(text=delta, turn_id=turn_id), turn_id)
                    await sentences.put(safe)
                    return safe is sentence

                flagged = False
                async for piece in pieces:
                    if reply.llm_first_token is None:
                        reply.llm_first_token = time.monotonic()
                    reply.tokens += 1
                    buffer += piece
                    done, buffer = split_sentences(buffer, first=not chunked)
                    for sentence in done:
                        chunked = True
                        if not await say(sentence):
                            flagged = True
                            break
                    if flagged:
                        break
                if buffer.strip() and not flagged:
                    await say(buffer.strip())
                reply.llm_done = time.monotonic()
                if not reply.text.strip():
                    reply.text = "I'm here with you. Tell me a little more about what's on your mind."
                    await sentences.put(reply.text)
                await self.emit(m.Response(text=reply.text.strip(), turn_id=turn_id), turn_id)
            finally:
                await sentences.put(None)

        mood = prepared.emotion.get("primary_emotion") if prepared.emotion else None

        async def speak() -> None:
            started = False
            while (sentence := await sentences.get()) is not None:
                t0 = time.monotonic()
                pcm = await self.services.tts.synthesize(sentence, self.output_rate, mood)
                if reply.tts_first_audio_ms is None:
                    reply.tts_first_audio_ms = round(1000 * (time.monotonic() - t0), 1)
                if pcm.size == 0:
                    continue
                if not started:
                    started = True
                    await self.emit(m.AudioStart(sample_rate=self.output_rate, turn_id=turn_id), turn_id)
                duration_ms = 1000 * pcm.size / self.output_rate
                reply.segments.append(SpokenSegment(sentence, reply.audio_ms_queued, duration_ms))
                for frame in frames(pcm, self.output_rate, self.settings.tts.frame_ms):
                    await self.outbox.put((turn_id, frame))
                reply.audio_ms_queued += duration_ms
            if started:
                await self.emit(m.AudioEnd(turn_id=turn_id, duration_ms=round(reply.audio_ms_queued, 1)), turn_id)

        await self.emit(m.Status(message="Speaking...", turn_id=turn_id), turn_id)
        async with asyncio.TaskGroup() as group:
            group.create_task(write())
            group.create_task(speak())

    def _interrupt_now(self, reason: str) -> ActiveReply | None:
        reply = self.active
        if reply is None or reply.interrupted is not None or reply.task is None or reply.task.done():
            return None
        reply.interrupted = reason
        self.cancelled_turns.add(reply.turn_id)  # the sender drops everything of this turn still queued
        reply.task.cancel()
        return reply
