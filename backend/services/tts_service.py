"""Text-to-speech on its single dedicated worker, resampled to the rate the client asked for."""

from __future__ import annotations

import numpy as np

from backend.core.audio_utils import PCM16, float_to_pcm16, resample
from backend.services.model_service import ModelService


class TTSService:
    def __init__(self, models: ModelService) -> None:
        self._models = models

    @property
    def native_rate(self) -> int:
        return self._models.engines.tts.sample_rate

    def _synthesize(self, text: str, rate: int, emotion: str | None) -> PCM16:
        pcm = self._models.engines.tts.synthesize(text, emotion)
        if rate == self.native_rate or pcm.size == 0:
            return pcm
        return float_to_pcm16(resample(pcm.astype(np.float32) / 32768.0, self.native_rate, rate))

    async def synthesize(self, text: str, rate: int | None = None, emotion: str | None = None) -> PCM16:
        """``emotion``: the user's primary emotion, which the voice may follow (slower and softer for sadness)."""
        return await self._models.tts_runner.run(self._synthesize, text, rate or self.native_rate, emotion)
