"""Emotion from the words (trained head) and the voice (prosody), fused."""

from __future__ import annotations

from backend.core.audio_utils import STT_RATE, FloatAudio
from backend.models.emotion import EmotionData
from backend.services.fusion import fuse
from backend.services.model_service import ModelService


class EmotionService:
    def __init__(self, models: ModelService) -> None:
        self._models = models

    @property
    def models(self) -> ModelService:
        return self._models

    async def text_scores(self, text: str) -> dict[str, float]:
        engine = self._models.engines.text_emotion
        return (await self._models.emotion_runner.run(engine.predict, [text]))[0]

    async def analyze(self, text: str, audio_16k: FloatAudio | None = None) -> EmotionData:
        scores = await self.text_scores(text)
        reading = None
        if audio_16k is not None and audio_16k.size:
            engine = self._models.engines.speech_emotion
            reading = await self._models.emotion_runner.run(engine.analyze, audio_16k, STT_RATE, text)
        return fuse(scores, reading, speech_weight=self._models.settings.emotion.speech_weight)
