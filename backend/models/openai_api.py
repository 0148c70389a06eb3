"""Request and response shapes of the OpenAI-compatible API under /v1 (the subset we serve; see docs/api.md).

Requests accept, and ignore, OpenAI fields we have no use for (``temperature``, ``max_tokens``, ``tools``...):
the server's own settings (``llm.*``) decide how replies are generated, so an off-the-shelf client never fails on
a field it always sends.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.models.emotion import EmotionData

CHAT_MODEL = "claritymentor"
TranscriptionFormat = Literal["json", "text", "verbose_json", "srt", "vtt"]
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- models --------------------------------------------------------------------------------------------------
class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "claritymentor"
    capability: Literal["chat", "transcription", "speech"]  # ours: what the id is for
    engine: str  # ours: the engine that serves it (its display name)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---- audio ---------------------------------------------------------------------------------------------------
class TranscriptionSegment(BaseModel):
    """One segment covering the whole recording: our engine returns text only. The decoder statistics OpenAI
    reports per segment are not measured: they are 0.0 placeholders."""

    id: int = 0
    seek: int = 0
    start: float = 0.0
    end: float
    text: str
    tokens: list[int] = Field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0


class TranscriptionVerbose(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment]


class SpeechRequest(_Lenient):
    model: str = "tts-1"
    input: str = Field(min_length=1, description="the text to speak (at most server.max_text_chars)")
    voice: str = Field("alloy", max_length=64, description="an OpenAI voice name, or one of the engine's own voices")
    response_format: SpeechFormat = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    sample_rate: int | None = Field(None, description="ours: 16000, 22050, 24000 or 48000 (default 24000, as OpenAI)")


# ---- chat ----------------------------------------------------------------------------------------------------
class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessageIn(_Lenient):
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return " ".join(p.text for p in self.content or [] if p.type == "text" and p.text)


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatRequest(_Lenient):
    model: str = CHAT_MODEL
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256, description="ours: an existing session id continues it")
    n: int = Field(1, ge=1, le=1, description="one choice only")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Safety(BaseModel):
    crisis: bool
    category: str | None = None


class ClarityExtra(BaseModel):
    """Ours, next to the OpenAI fields: the session the turn went into, the user's emotion, the safety decision."""

    session_id: str
    turn_id: str
    emotion: EmotionData
    safety: Safety
    outcome: str | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "content_filter"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = CHAT_MODEL
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    claritymentor: ClarityExtra


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length", "content_filter"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str = CHAT_MODEL
    choices: list[ChunkChoice]
    usage: Usage | None = None
    claritymentor: ClarityExtra | None = None

    def sse(self) -> str:
        """One server-sent event. Unset ``usage``/``claritymentor`` and unset delta fields are left out (as OpenAI
        does); ``finish_reason: null`` stays."""
        body = self.model_dump(mode="json")
        for key in ("usage", "claritymentor"):
            if body[key] is None:
                del body[key]
        for choice in body["choices"]:
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def sse_error(code: str, message: str, status: int) -> str:
    """An error after the stream began, in the shape OpenAI clients raise from: ``{"error": {...}}``."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "code": code}}
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"
