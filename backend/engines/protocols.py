"""Capability Protocols. Each engine module implements one; tests use Fake* classes implementing the same.

Engines are synchronous and may block: services run them in their own bounded executors, off the event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from backend.core.audio_types import PCM16, FloatAudio


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    language: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class ProsodyReading:
    """What the voice alone suggests. arousal and valence in [-1, 1]; confidence in [0, 1]."""

    arousal: float
    valence: float
    confidence: float
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str


@runtime_checkable
class SpeechToText(Protocol):
    name: str

    def transcribe(self, audio: FloatAudio) -> Transcription:
        """Transcribe 16 kHz mono float32 audio; empty text when nothing was said."""
        ...


class VADStream(Protocol):
    def speech_prob(self, frame: FloatAudio) -> float:
        """Probability of speech in one frame of ``frame_samples`` samples at 16 kHz."""
        ...


@runtime_checkable
class VoiceActivity(Protocol):
    name: str
    frame_samples: int

    def new_stream(self) -> VADStream:
        """A detector with its own state, for one audio stream."""
        ...


@runtime_checkable
class EndOfTurnAudio(Protocol):
    name: str

    def probability(self, audio_16k: FloatAudio) -> float:
        """P(the speaker finished the turn) in [0, 1], from 16 kHz mono audio ending now."""
        ...


@runtime_checkable
class TextEmotion(Protocol):
    name: str
    labels: tuple[str, ...]

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Calibrated probabilities over ``labels`` for each text."""
        ...


@runtime_checkable
class SpeechEmotion(Protocol):
    name: str

    def analyze(self, audio: FloatAudio, sample_rate: int, transcript: str) -> ProsodyReading: ...


@runtime_checkable
class LanguageModel(Protocol):
    name: str

    def count_tokens(self, text: str) -> int: ...

    def stream(self, messages: Sequence[ChatMessage], max_new_tokens: int, cancel: threading.Event) -> Iterator[str]:
        """Yield text pieces as they are generated; stop soon after ``cancel`` is set."""
        ...


@runtime_checkable
class TextToSpeech(Protocol):
    name: str
    sample_rate: int

    def synthesize(self, text: str, emotion: str | None = None) -> PCM16:
        """Mono PCM16 at ``sample_rate``; ``emotion`` (the user's, e.g. "sadness") may shape the delivery."""
        ...


@dataclass
class EngineSet:
    """Every engine the service runs with, loaded once."""

    stt: SpeechToText
    vad: VoiceActivity
    text_emotion: TextEmotion
    speech_emotion: SpeechEmotion
    llm: LanguageModel
    tts: TextToSpeech
    load_seconds: dict[str, float] = field(default_factory=dict)
    crisis: Any = None  # the learned crisis classifier (CrisisClassifier); None: the rules alone
    end_of_turn: EndOfTurnAudio | None = None  # acoustic end-of-turn model (SmartTurn); None: text signals only

    def close(self) -> None:
        for engine in (self.stt, self.vad, self.text_emotion, self.speech_emotion, self.llm, self.tts):
            close = getattr(engine, "close", None)
            if callable(close):
                close()
