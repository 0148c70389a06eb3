"""Text-to-speech on its single dedicated worker, resampled to the rate the client asked for."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from backend.core.audio_utils import PCM16, float_to_pcm16, resample
from backend.services.model_service import ModelService
from backend.services.runner import URGENT


@runtime_checkable
class VoiceChoice(Protocol):
    """An engine that can speak one call in another of its voices, or faster or slower (espeak does)."""

    def has_voice(self, voice: str) -> bool: ...

    def synthesize(
        self, text: str, emotion: str | None = None, *, voice: str | None = None, speed: float = 1.0
    ) -> PCM16: ...


class TTSService:
    def __init__(self, models: ModelService) -> None:
        self._models = models

    @property
    def native_rate(self) -> int:
        return self._models.engines.tts.sample_rate

    def has_voice(self, voice: str) -> bool:
        """Whether the engine can speak ``voice`` for one call (an engine with one voice: never)."""
        engine = self._models.engines.tts
        return isinstance(engine, VoiceChoice) and engine.has_voice(voice)

    def _synthesize(
        self, text: str, rate: int, emotion: str | None, voice: str | None = None, speed: float = 1.0
    ) -> PCM16:
        engine = self._models.engines.tts
        if (voice is not None or speed != 1.0) and isinstance(engine, VoiceChoice):
            pcm = engine.synthesize(text, emotion, voice=voice, speed=speed)
        else:
            pcm = engine.synthesize(text, emotion)
        if rate == self.native_rate or pcm.size == 0:
            return pcm
        return float_to_pcm16(resample(pcm.astype(np.float32) / 32768.0, self.native_rate, rate))

    async def synthesize(
        self,
        text: str,
        rate: int | None = None,
        emotion: str | None = None,
        *,
        voice: str | None = None,
        speed: float = 1.0,
        priority: int = URGENT,
    ) -> PCM16:
        """``emotion``: the user's primary emotion, which the voice may follow (slower and softer for sadness).
        ``voice`` and ``speed`` apply where the engine can change them (:class:`VoiceChoice`), else are ignored.
        ``priority``: a reply's later sentences go NORMAL, so another session's first sentence is spoken first."""
        rate = rate or self.native_rate
        return await self._models.tts_runner.run_at(
            priority, lambda: self._synthesize(text, rate, emotion, voice, speed)
        )
