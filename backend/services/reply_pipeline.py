"""Reply stage of the voice pipeline: one utterance becomes one turn.

STT (or the pause's transcript) → the shared turn lifecycle (emotion, safety, the user turn stored, the prompt)
→ guarded sentences → TTS → paced audio frames on the transport. Sentence 1 is spoken while the LLM writes
sentence 2. An interruption (barge-in or the client's ``interrupt``) cancels generation and synthesis, drops what
was not yet sent, and the turn is stored with what the user heard; a failure keeps what was produced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from backend.core.audio_utils import STT_RATE, frames
from backend.models import messages as m
from backend.services.container import Services
from backend.services.mentor_service import Turn
from backend.services.reply_stream import ActiveReply, SpokenSegment, first_error, ms_between
from backend.services.runner import NORMAL, URGENT
from backend.services.turn_taking import PendingUtterance
from backend.services.voice_transport import Transport

log = logging.getLogger(__name__)


class ReplyPipeline:
    def __init__(self, services: Services, transport: Transport, session_id: Callable[[], str]) -> None:
        self.services = services
        self.transport = transport
        self._session_id = session_id
        self.active: ActiveReply | None = None

    async def run(self, pending: PendingUtterance, turn_id: str) -> None:
        t = self.transport
        audio = pending.utterance.audio
        metrics = m.Metrics(turn_id=turn_id, user_audio_seconds=round(audio.size / STT_RATE, 3))
        await t.emit(m.Status(message="Transcribing...", turn_id=turn_id))
        t0 = time.monotonic()
        # The pause's transcript covers every word when no speech followed it: no second STT pass.
        early = await pending.pause_transcript.result() if pending.pause_transcript is not None else None
        transcription = early if early is not None else await self.services.stt.transcribe(audio)
        metrics.transcript_reused = early is not None
        metrics.stt_ms = round(1000 * (time.monotonic() - t0), 1)
        text = transcription.text.strip()
        if not text:
            await t.emit(m.Error(code="no_speech", message="no speech detected", turn_id=turn_id))
            return
        if self.services.settings.server.log_content:
            log.info("transcript: %s", text)
        await t.emit(m.Transcript(text=text, turn_id=turn_id, language=transcription.language))
        await t.emit(m.Status(message="Analyzing emotion...", turn_id=turn_id))
        t0 = time.monotonic()
        mentor = self.services.mentor
        reply = ActiveReply(turn_id=turn_id)
        async with mentor.turn(self._session_id(), text, audio, turn_id=turn_id) as turn:
            metrics.emotion_ms = round(1000 * (time.monotonic() - t0), 1)
            await t.emit(m.EmotionEvent(data=turn.emotion, turn_id=turn_id))
            if turn.crisis_category:
                await t.emit(m.Safety(category=turn.crisis_category, turn_id=turn_id))
            await t.emit(m.Status(message="Generating response...", turn_id=turn_id))
            self.active = reply
            reply.task = asyncio.create_task(self._speak(turn, reply))
            try:
                await asyncio.wait([reply.task])
            finally:
                self.active = None
                if not reply.task.done():  # we were cancelled (the client left): stop generating too
                    reply.task.cancel()
            if reply.task.cancelled() or reply.interrupted:
                played = reply.played_ms_ack if reply.played_ms_ack is not None else t.played_ms(turn_id)
                heard = reply.heard_text(min(played, reply.audio_ms_queued))
                turn.interrupt(heard)
                reason = "client" if reply.interrupted == "client" else "speech"
                await t.emit(m.Interrupted(turn_id=turn_id, heard_text=heard, reason=reason))
            elif (exc := first_error(reply.task.exception())) is not None:
                raise exc
        metrics.llm_first_token_ms = ms_between(turn.first_token_at, turn.llm_start)
        metrics.llm_total_ms = ms_between(turn.done_at, turn.llm_start)
        metrics.tts_first_audio_ms = reply.tts_first_audio_ms
        metrics.voice_to_voice_ms = ms_between(t.first_frame_wall.get(turn_id), pending.speech_end_wall)
        metrics.tokens = turn.tokens
        metrics.audio_seconds = round(reply.audio_ms_queued / 1000, 3)
        outcome = turn.outcome or "completed"
        self.services.telemetry.observe_turn(metrics.model_dump(), interrupted=outcome == "interrupted")
        await t.emit(metrics)
        await t.emit(m.TurnEnd(turn_id=turn_id, interrupted=outcome == "interrupted", outcome=outcome))
        await t.forget_turn(turn_id)

    async def _speak(self, turn: Turn, reply: ActiveReply) -> None:
        """Write (LLM → guarded sentences → text events) and speak (sentences → TTS → frames) side by side."""
        t = self.transport
        turn_id = reply.turn_id
        sentences: asyncio.Queue[str | None] = asyncio.Queue()

        async def write() -> None:
            try:
                async for sentence in self.services.mentor.sentences(turn):
                    delta = (" " if len(turn.sentences_out) > 1 else "") + sentence
                    await t.emit(m.ResponseDelta(text=delta, turn_id=turn_id), turn_id)
                    await sentences.put(sentence)
                await t.emit(m.Response(text=turn.reply_text, turn_id=turn_id), turn_id)
            finally:
                await sentences.put(None)

        mood = turn.emotion.primary_emotion
        rate = t.output_rate

        async def speak() -> None:
            started = False
            while (sentence := await sentences.get()) is not None:
                t0 = time.monotonic()
                # Later sentences have the audio of the earlier ones to play first: others' first sentences go ahead.
                priority = NORMAL if reply.segments else URGENT
                pcm = await self.services.tts.synthesize(sentence, rate, mood, priority=priority)
                if reply.tts_first_audio_ms is None:
                    reply.tts_first_audio_ms = round(1000 * (time.monotonic() - t0), 1)
                if pcm.size == 0:
                    continue
                if not started:
                    started = True
                    await t.emit(m.AudioStart(sample_rate=rate, turn_id=turn_id), turn_id)
                duration_ms = 1000 * pcm.size / rate
                reply.segments.append(SpokenSegment(sentence, reply.audio_ms_queued, duration_ms))
                for frame in frames(pcm, rate, self.services.settings.tts.frame_ms):
                    await t.audio(turn_id, frame, 1000 * len(frame) / 2 / rate)
                reply.audio_ms_queued += duration_ms
            if started:
                await t.emit(m.AudioEnd(turn_id=turn_id, duration_ms=round(reply.audio_ms_queued, 1)), turn_id)
            await t.all_sent(turn_id)  # the reply stays interruptible while its audio plays

        await t.emit(m.Status(message="Speaking...", turn_id=turn_id), turn_id)
        async with asyncio.TaskGroup() as group:
            group.create_task(write())
            group.create_task(speak())

    def interrupt(self, reason: str) -> bool:
        """Cut the current reply off now; False when nothing was playing or generating."""
        reply = self.active
        if reply is None or reply.interrupted is not None or reply.task is None or reply.task.done():
            return False
        reply.interrupted = reason
        self.transport.cancel_turn(reply.turn_id)  # the sender drops everything of this turn still queued
        reply.task.cancel()
        return True

    def ack_playback(self, played_ms: float, turn_id: str | None) -> None:
        if self.active is not None and turn_id in (None, self.active.turn_id):
            self.active.played_ms_ack = played_ms
