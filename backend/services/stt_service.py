"""Speech-to-text on the STT engine's executor."""

from __future__ import annotations

from backend.core.audio_utils import FloatAudio
from backend.engines.protocols import Transcription
from backend.services.model_service import ModelService


class STTService:
    def __init__(self, models: ModelService) -> None:
        self._models = models

    async def transcribe(self, audio_16k: FloatAudio) -> Transcription:
        return await self._models.stt_runner.run(self._models.engines.stt.transcribe, audio_16k)
