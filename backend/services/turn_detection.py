"""Turn detection stage of the voice pipeline: VAD + end-of-turn policy for one audio stream.

In: PCM16 chunks as they arrive (``push``), ``end_of_speech`` (``flush``). Out: finished utterances on
``utterances`` (each with the wall time its last speech sample arrived and, when one was made, the pause's
transcript), and ``on_speech(run_ms)`` after every VAD step so the session can detect barge-in. It owns every
endpointing parameter: the adaptive end-of-turn silence (``TurnTaker``) and the no-audio timeout (audio stopped
arriving after speech: the turn ends after ``vad.no_audio_timeout_s``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from backend.config import VADSettings
from backend.core.audio_utils import FloatAudio
from backend.core.exceptions import ClarityError, Overloaded
from backend.engines.protocols import Transcription, VoiceActivity
from backend.services.endpointing import Endpointer, Utterance
from backend.services.runner import BoundedRunner
from backend.services.turn_taking import PendingUtterance, TurnTaker
from backend.services.voice_transport import AudioIn

MAX_QUEUED_CHUNKS = 2000  # audio chunks waiting for the VAD (tens of seconds); beyond: the client is flooding


class TurnDetection:
    def __init__(
        self,
        settings: VADSettings,
        vad: VoiceActivity,
        runner: BoundedRunner,
        *,
        to_16k: Callable[[bytes], FloatAudio],
        transcribe: Callable[[FloatAudio, int], Awaitable[Transcription]],
        sentence_end: Callable[[str], Awaitable[float | None]],
        on_partial: Callable[[str], Awaitable[None]],
        on_speech: Callable[[float], None],
        on_error: Callable[[str, str], Awaitable[None]],
        stt_busy: Callable[[], bool],
        acoustic_end: Callable[[FloatAudio], Awaitable[float | None]] | None = None,
    ) -> None:
        self.settings = settings
        self.endpointer = Endpointer(settings, vad.new_stream(), vad.frame_samples)
        self.turns = TurnTaker(settings, self.endpointer, transcribe, sentence_end, on_partial, acoustic_end)
        self.utterances: asyncio.Queue[PendingUtterance] = asyncio.Queue(maxsize=8)
        self._runner = runner
        self._to_16k = to_16k
        self._on_speech = on_speech
        self._on_error = on_error
        self._stt_busy = stt_busy
        self._audio_in: asyncio.Queue[AudioIn] = asyncio.Queue(maxsize=MAX_QUEUED_CHUNKS)
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=4096)

    def push(self, chunk: AudioIn) -> None:
        try:
            self._audio_in.put_nowait(chunk)
        except asyncio.QueueFull as exc:
            raise Overloaded("audio is arriving faster than it can be processed; this chunk was dropped") from exc

    async def drained(self) -> None:
        """Wait until every chunk pushed so far went through the VAD (control messages act after their audio)."""
        await self._audio_in.join()

    async def run(self) -> None:
        """Feed the VAD with everything that arrived since its last run, in one job: a stream whose VAD falls behind
        (a loaded server) catches up in one step instead of queueing one job per 20 ms chunk."""
        while True:
            timeout = self.settings.no_audio_timeout_s if self.endpointer.triggered else None
            try:
                first = await asyncio.wait_for(self._audio_in.get(), timeout)
            except TimeoutError:
                await self.flush(timed_out=True)
                continue
            batch = [first]
            while not self._audio_in.empty():
                batch.append(self._audio_in.get_nowait())
            try:
                await self._feed(batch)
            except ClarityError as exc:
                await self._on_error(exc.code, exc.detail)
            finally:
                for _ in batch:
                    self._audio_in.task_done()

    async def _feed(self, batch: list[AudioIn]) -> None:
        start = self.endpointer.position

        def process() -> Any:
            parts = [self._to_16k(chunk.data) for chunk in batch]
            ends = np.cumsum([part.size for part in parts]) + start
            return self.endpointer.feed(np.concatenate(parts)), ends

        result, ends = await self._runner.run(process)
        self._arrivals.extend((int(end), chunk.arrived) for end, chunk in zip(ends, batch, strict=True))
        self._on_speech(result.speech_run_ms)
        for utterance in result.utterances:
            await self._queue(utterance)
        self.turns.on_audio(stt_busy=self._stt_busy() or not self.utterances.empty())

    async def flush(self, *, timed_out: bool) -> None:
        """End the utterance now (``end_of_speech`` or the no-audio timeout)."""
        had_audio = self.endpointer.heard_audio_since_emit
        utterance = self.endpointer.flush()
        if utterance is not None:
            await self._queue(utterance, fallback_wall=None if timed_out else time.monotonic())
        elif had_audio and not timed_out:
            await self._on_error("no_speech", "no speech detected")

    def _wall_for_sample(self, sample: int) -> float:
        for position, wall in self._arrivals:
            if position >= sample:
                return wall
        return time.monotonic()

    async def _queue(self, utterance: Utterance, fallback_wall: float | None = None) -> None:
        wall = self._wall_for_sample(utterance.speech_end_sample)
        if fallback_wall is not None:
            wall = min(wall, fallback_wall)
        pause = self.turns.take(utterance)
        try:
            self.utterances.put_nowait(PendingUtterance(utterance, wall, pause))
        except asyncio.QueueFull:
            await self._on_error("busy", "too many utterances are waiting; this one was dropped, please repeat it")

    def close(self) -> None:
        self.turns.cancel()
