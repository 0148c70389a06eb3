"""Speech-to-text on the STT engine's executor."""

from __future__ import annotations

from backend.core.audio_utils import FloatAudio
from backend.engines.protocols import Transcription
from backend.services.model_service import ModelService
from backend.services.runner import URGENT


class STTService:
    def __init__(self, models: ModelService) -> None:
        self._models = models

    async def transcribe(self, audio_16k: FloatAudio, priority: int = URGENT) -> Transcription:
        """``priority``: URGENT when a user waits on it; a pause's speculative transcript is NORMAL and a partial
        for display BACKGROUND, so under load they queue behind every final transcript."""
        engine = self._models.engines.stt
        return await self._models.stt_runner.run_at(priority, lambda: engine.transcribe(audio_16k))
