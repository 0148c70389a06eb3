"""WebSocket messages, both ways. Discriminated on "type"; new features add types, never change old ones."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from backend.models.emotion import EmotionData

OUTPUT_RATES = (16000, 22050, 24000, 48000)


class _Client(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ConfigMessage(_Client):
    type: Literal["config"]
    sample_rate: int | None = Field(None, ge=8000, le=48000, description="rate of the PCM16 you send")
    output_sample_rate: int | None = Field(None, description="rate you want reply audio in: 16000/22050/24000/48000")
    session_id: str | None = Field(None, max_length=64, description="join this existing session")

    def model_post_init(self, _context: Any) -> None:
        if self.output_sample_rate is not None and self.output_sample_rate not in OUTPUT_RATES:
            raise ValueError(f"output_sample_rate must be one of {OUTPUT_RATES}")


class EndOfSpeechMessage(_Client):
    type: Literal["end_of_speech"]


class InterruptMessage(_Client):
    type: Literal["interrupt"]


class PlaybackMessage(_Client):
    type: Literal["playback"]
    played_ms: float = Field(ge=0)
    turn_id: str | None = None


class PingMessage(_Client):
    type: Literal["ping"]


class AuthMessage(_Client):
    """The API key, as the first message (browsers cannot set headers on a WebSocket)."""

    type: Literal["auth"]
    api_key: str = Field(max_length=512)


ClientMessage = Annotated[
    ConfigMessage | EndOfSpeechMessage | InterruptMessage | PlaybackMessage | PingMessage | AuthMessage,
    Field(discriminator="type"),
]
client_message_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
CLIENT_TYPES = ("config", "end_of_speech", "interrupt", "playback", "ping", "auth")


class ServerMessage(BaseModel):
    type: str


class Ready(ServerMessage):
    type: Literal["ready"] = "ready"
    session_id: str
    input_sample_rate: int
    output_sample_rate: int
    audio_format: Literal["pcm_s16le"] = "pcm_s16le"
    protocol_version: int = 2


class Status(ServerMessage):
    type: Literal["status"] = "status"
    message: str
    turn_id: str | None = None


class Transcript(ServerMessage):
    type: Literal["transcript"] = "transcript"
    text: str
    turn_id: str
    language: str | None = None


class PartialTranscript(ServerMessage):
    type: Literal["partial_transcript"] = "partial_transcript"
    text: str


class EmotionEvent(ServerMessage):
    type: Literal["emotion"] = "emotion"
    data: EmotionData
    turn_id: str


class Safety(ServerMessage):
    type: Literal["safety"] = "safety"
    category: str
    turn_id: str | None = None


class ResponseDelta(ServerMessage):
    type: Literal["response_delta"] = "response_delta"
    text: str
    turn_id: str


class Response(ServerMessage):
    type: Literal["response"] = "response"
    text: str
    turn_id: str


class AudioStart(ServerMessage):
    type: Literal["audio_start"] = "audio_start"
    sample_rate: int
    format: Literal["pcm_s16le"] = "pcm_s16le"
    channels: Literal[1] = 1
    turn_id: str


class AudioEnd(ServerMessage):
    type: Literal["audio_end"] = "audio_end"
    turn_id: str
    duration_ms: float


class Interrupted(ServerMessage):
    type: Literal["interrupted"] = "interrupted"
    turn_id: str
    heard_text: str
    reason: Literal["speech", "client"]


class Metrics(ServerMessage):
    type: Literal["metrics"] = "metrics"
    turn_id: str
    stt_ms: float | None = None
    emotion_ms: float | None = None
    llm_first_token_ms: float | None = None
    llm_total_ms: float | None = None
    tts_first_audio_ms: float | None = None
    voice_to_voice_ms: float | None = None
    tokens: int = 0
    audio_seconds: float = 0.0
    user_audio_seconds: float | None = None
    transcript_reused: bool = False  # the pause's partial transcript served as the final one (no second STT)


class TurnEnd(ServerMessage):
    type: Literal["turn_end"] = "turn_end"
    turn_id: str
    interrupted: bool = False
    outcome: Literal["completed", "interrupted", "failed", "disconnected"] = "completed"


class Error(ServerMessage):
    type: Literal["error"] = "error"
    code: str
    message: str
    turn_id: str | None = None


class Pong(ServerMessage):
    type: Literal["pong"] = "pong"


def parse_client_message(raw: str) -> ClientMessage | Error:
    """A client's text frame as a typed message, or the error event that explains why it is not one."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Error(code="invalid_json", message=f"could not parse JSON: {exc.msg}")
    if not isinstance(data, dict) or data.get("type") not in CLIENT_TYPES:
        kind = data.get("type") if isinstance(data, dict) else None
        return Error(code="unknown_type", message=f"unknown message type {kind!r}; expected one of {CLIENT_TYPES}")
    try:
        return client_message_adapter.validate_python(data)
    except ValidationError as exc:
        return Error(code="invalid_message", message=exc.errors(include_url=False)[0]["msg"])
