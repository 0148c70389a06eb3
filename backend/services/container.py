"""Everything a route needs, built once in the lifespan and kept on app.state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.config import Settings
from backend.core.telemetry import Telemetry
from backend.services.emotion_service import EmotionService
from backend.services.limits import Limits, make_limits
from backend.services.llm_service import LLMService
from backend.services.mentor_service import MentorService
from backend.services.model_service import ModelService
from backend.services.session_service import SessionService
from backend.services.stt_service import STTService
from backend.services.tts_service import TTSService


@dataclass
class Services:
    settings: Settings
    models: ModelService
    sessions: SessionService
    stt: STTService
    emotion: EmotionService
    llm: LLMService
    tts: TTSService
    mentor: MentorService
    limits: Limits
    active_connections: set[Any] = field(default_factory=set)  # this process's VoiceSessions
    telemetry: Telemetry = field(default_factory=Telemetry)

    @classmethod
    def build(cls, settings: Settings, models: ModelService, sessions: SessionService) -> Services:
        emotion = EmotionService(models)
        llm = LLMService(models)
        return cls(
            settings=settings,
            models=models,
            sessions=sessions,
            stt=STTService(models),
            emotion=emotion,
            llm=llm,
            tts=TTSService(models),
            mentor=MentorService(settings, emotion, llm, sessions),
            limits=make_limits(
                settings.redis_url, settings.security.requests_per_minute, settings.server.max_connections
            ),
        )
