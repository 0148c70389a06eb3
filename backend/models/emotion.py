"""The emotion reading of one user turn, typed from fusion to the socket, the REST API and the database."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field


class ChannelEmotion(BaseModel):
    """What the words alone say."""

    primary_emotion: str
    confidence: float = Field(ge=0, le=1)
    scores: dict[str, float] = Field(default_factory=dict)


class SpeechReading(BaseModel):
    """What the voice alone suggests: arousal and valence in [-1, 1]."""

    arousal: float
    valence: float
    confidence: float = Field(ge=0, le=1)
    features: dict[str, float] = Field(default_factory=dict)


class EmotionData(BaseModel):
    """The fused reading (``primary_emotion``, ``confidence``, ``scores``) and each channel behind it."""

    primary_emotion: str
    confidence: float = Field(ge=0, le=1)
    scores: dict[str, float] = Field(default_factory=dict)
    text: ChannelEmotion | None = None
    speech: SpeechReading | None = None
    incongruent: bool = False


def as_emotion(value: EmotionData | Mapping[str, Any] | None) -> EmotionData | None:
    """Training and evaluation data keep emotions as plain mappings: the typed reading for the prompt code."""
    if value is None or isinstance(value, EmotionData):
        return value
    return EmotionData.model_validate(dict(value))
