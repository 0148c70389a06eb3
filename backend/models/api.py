"""REST request/response models (the seed's shapes, plus additive fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from backend.models.emotion import EmotionData

# Stripped before checking: whitespace-only text is rejected (422), never stored as an empty turn.
UserText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class ErrorBody(BaseModel):
    detail: str
    code: str
    error_id: str


class ModelInfo(BaseModel):
    name: str
    loaded: bool
    load_seconds: float | None = None
    device: str | None = None


class HealthResponse(BaseModel):
    status: str
    models_loaded: bool
    timestamp: datetime
    models: dict[str, ModelInfo] = Field(default_factory=dict)
    active_connections: int = 0


class SessionCreated(BaseModel):
    session_id: str
    created_at: datetime


class EmotionBrief(BaseModel):
    primary_emotion: str
    confidence: float


class TurnOut(BaseModel):
    role: str
    content: str
    emotion: EmotionBrief | None
    timestamp: datetime
    interrupted: bool = False
    safety: bool = False
    outcome: str | None = Field(None, description="assistant turns: completed, interrupted, failed or disconnected")


class SessionSummaryOut(BaseModel):
    session_id: str
    created_at: datetime
    updated_at: datetime
    turns: int


class SessionList(BaseModel):
    sessions: list[SessionSummaryOut]


class TimelinePoint(BaseModel):
    timestamp: datetime
    primary_emotion: str
    confidence: float


class HistoryResponse(BaseModel):
    session_id: str
    created_at: datetime
    turns: list[TurnOut]
    emotion_timeline: list[TimelinePoint]


class TextChatRequest(BaseModel):
    text: UserText
    session_id: str | None = Field(None, max_length=64)


class TextChatResponse(BaseModel):
    session_id: str
    response: str
    emotion: EmotionData
    safety: bool = False


class EmotionRequest(BaseModel):
    text: UserText


class EmotionResponse(BaseModel):
    primary_emotion: str
    confidence: float
    scores: dict[str, float]


class SpeakRequest(BaseModel):
    text: UserText
    sample_rate: int | None = Field(None, description="16000, 22050, 24000 or 48000; default: the voice's rate")


class TranscribeResponse(BaseModel):
    text: str
    language: str
    duration_s: float
