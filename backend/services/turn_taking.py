"""Turn taking for one voice stream: transcribe the pause as soon as it starts, decide from that transcript how
long the pause must last before the turn ends, and hand the transcript on as the final one when no speech
followed it (the turn then skips its own STT pass).

Three signals decide the wait (``endpointing.combined_end_silence_ms``): the dangling-word and punctuation rules,
the LLM's probability that the sentence is finished, and the speaking rate; when an acoustic end-of-turn model
(Smart Turn) is loaded, its P(turn complete) for the pause's audio is one more vote, scored while Whisper
transcribes. Partial transcripts are budgeted: one per pause onset (always: it is reused as the final transcript)
plus, for display, one per ``PARTIAL_INTERVAL_MS`` of speech while the STT engine is idle and fast enough.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from backend.config import VADSettings
from backend.core.audio_utils import FloatAudio
from backend.core.exceptions import ClarityError
from backend.engines.protocols import Transcription
from backend.services.endpointing import Endpointer, Utterance, combined_end_silence_ms
from backend.services.runner import BACKGROUND, NORMAL

PARTIAL_INTERVAL_MS = 700.0
PAUSE_PARTIAL_MS = 96.0  # three VAD frames of silence


@dataclass(slots=True)
class PauseTranscript:
    """A transcript of the utterance up to ``speech_end_sample``, started when the pause began."""

    speech_end_sample: int
    task: asyncio.Task[Transcription | None]

    async def result(self) -> Transcription | None:
        try:
            return await self.task
        except (asyncio.CancelledError, ClarityError):
            return None


@dataclass
class PendingUtterance:
    utterance: Utterance
    speech_end_wall: float
    pause_transcript: PauseTranscript | None = None  # made at the pause onset, when no speech followed


class TurnTaker:
    def __init__(
        self,
        settings: VADSettings,
        endpointer: Endpointer,
        transcribe: Callable[[FloatAudio, int], Awaitable[Transcription]],
        sentence_end: Callable[[str], Awaitable[float | None]],
        on_partial: Callable[[str], Awaitable[None]],
        acoustic_end: Callable[[FloatAudio], Awaitable[float | None]] | None = None,
    ) -> None:
        self.settings = settings
        self._acoustic_end = acoustic_end  # Smart Turn's P(turn complete), scored at each pause onset
        self.endpointer = endpointer
        self._transcribe = transcribe
        self._sentence_end = sentence_end
        self._on_partial = on_partial
        self._current: PauseTranscript | None = None
        self._last_partial_ms = 0.0
        self._budget_ok = True

    def on_audio(self, *, stt_busy: bool) -> None:
        """After each audio chunk: start a partial transcript when a pause begins or enough new speech came."""
        ep = self.endpointer
        if not ep.triggered:
            return
        if self._current is not None and (
            not self._current.task.done() or self._current.speech_end_sample == ep.last_speech_end
        ):
            return  # one at a time, and one per pause
        pause_started = ep.silence_ms >= PAUSE_PARTIAL_MS
        # The pause's transcript is always made: it becomes the final one when the turn ends in this pause.
        # Partials during speech only for the display, when STT is idle and fast enough.
        periodic = self._budget_ok and not stt_busy and ep.speech_ms - self._last_partial_ms >= PARTIAL_INTERVAL_MS
        if not (pause_started or periodic):
            return
        self._last_partial_ms = ep.speech_ms
        task = asyncio.create_task(self._partial(ep.utterance_audio, pause=pause_started))
        self._current = PauseTranscript(ep.last_speech_end, task)

    async def _partial(self, audio: FloatAudio, *, pause: bool = False) -> Transcription | None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        # At a pause onset the acoustic model scores the audio (turn runner) while Whisper transcribes it.
        scoring: asyncio.Future[float | None] | None = None
        if pause and self._acoustic_end is not None:
            scoring = asyncio.ensure_future(self._acoustic_end(audio))
        try:
            try:
                # Under load a pause's transcript queues behind others' final ones; a display partial behind both.
                result = await self._transcribe(audio, NORMAL if pause else BACKGROUND)
            except ClarityError:
                return None
            # A partial must finish inside the shortest end-of-turn silence, or it could delay the final transcript.
            self._budget_ok = 1000 * (loop.time() - start) < 0.8 * self.settings.min_end_silence_ms
            text = result.text.strip()
            if text and self.endpointer.triggered:
                await self._on_partial(text)
                p_end = await self._sentence_end(text)
                # Awaited only while the wait can still change: an ended turn's transcript must not wait for it.
                p_acoustic = await scoring if scoring is not None and self.endpointer.triggered else None
                if self.endpointer.triggered:
                    words_per_s = len(text.split()) / max(self.endpointer.speech_ms / 1000, 0.5)
                    self.endpointer.end_silence_ms = combined_end_silence_ms(
                        self.settings, text, words_per_s, p_end, p_acoustic
                    )
            return result
        finally:
            if scoring is not None and not scoring.done():
                scoring.cancel()

    def take(self, utterance: Utterance) -> PauseTranscript | None:
        """The pause transcript that covers all of ``utterance``'s speech, if one was made; resets for the next."""
        current, self._current = self._current, None
        self._last_partial_ms = 0.0
        self.endpointer.end_silence_ms = self.settings.end_silence_ms
        if current is not None and current.speech_end_sample == utterance.speech_end_sample:
            return current
        if current is not None and not current.task.done():
            current.task.cancel()
        return None

    def cancel(self) -> None:
        if self._current is not None:
            self._current.task.cancel()
