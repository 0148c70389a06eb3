"""Fake engines implementing the same Protocols as the real ones: fast, deterministic, no model files.

Audio convention for tests: a 220 Hz tone is "speech", zeros are silence. FakeSTT returns the configured text
for audio that contains tone and "" for silence, like a real recogniser with a VAD filter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import ClassVar

import numpy as np

from backend.config import EMOTIONS
from backend.core.audio_utils import PCM16, FloatAudio
from backend.engines.prosody import ProsodyEmotion
from backend.engines.protocols import ChatMessage, EngineSet, ProsodyReading, Transcription

SR = 16000


def tone(seconds: float, rate: int = SR, freq: float = 220.0, amp: float = 0.5) -> FloatAudio:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, rate: int = SR) -> FloatAudio:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def pcm_bytes(audio: FloatAudio) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


class FakeSTT:
    name = "fake-stt"

    def __init__(self, text: str = "I feel really stressed about my exam tomorrow.") -> None:
        self.texts: list[str] = [text]
        self.calls = 0
        self.delay_s = 0.0

    def transcribe(self, audio: FloatAudio) -> Transcription:
        self.calls += 1
        time.sleep(self.delay_s)
        has_speech = audio.size > 0 and float(np.abs(audio).max()) > 0.05
        text = self.texts[min(self.calls - 1, len(self.texts) - 1)] if has_speech else ""
        return Transcription(text=text, language="en", duration_s=audio.size / SR)


class _EnergyStream:
    def speech_prob(self, frame: FloatAudio) -> float:
        return 0.95 if float(np.sqrt(np.mean(frame**2))) > 0.05 else 0.02


class FakeVAD:
    name = "fake-vad"
    frame_samples = 512

    def new_stream(self) -> _EnergyStream:
        return _EnergyStream()


class FakeTextEmotion:
    name = "fake-text-emotion"
    labels = EMOTIONS
    KEYWORDS: ClassVar[dict[str, str]] = {
        "stressed": "fear",
        "angry": "anger",
        "happy": "joy",
        "sad": "sadness",
        "gross": "disgust",
        "wow": "surprise",
    }

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        out = []
        for text in texts:
            hit = next((label for word, label in self.KEYWORDS.items() if word in text.lower()), "neutral")
            out.append({label: (0.7 if label == hit else 0.05) for label in self.labels})
        return out


class FakeSpeechEmotion:
    name = "fake-prosody"

    def __init__(self) -> None:
        self._real = ProsodyEmotion()

    def analyze(self, audio: FloatAudio, sample_rate: int, transcript: str) -> ProsodyReading:
        return self._real.analyze(audio, sample_rate, transcript)


class FakeLLM:
    """Streams a fixed reply word by word, ``token_delay_s`` apart; honours cancellation between tokens."""

    name = "fake-llm"

    def __init__(
        self,
        reply: str = "That sounds really stressful. Try one practice question tonight. What topic worries you most?",
        token_delay_s: float = 0.0,
    ) -> None:
        self.reply = reply
        self.token_delay_s = token_delay_s
        self.prompts: list[list[ChatMessage]] = []
        self.cancelled = threading.Event()
        self.fail_with: Exception | None = None
        self.fail_when: str | None = None  # raise when the user's message contains this

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, messages: Sequence[ChatMessage], max_new_tokens: int, cancel: threading.Event) -> Iterator[str]:
        self.prompts.append(list(messages))
        if self.fail_with is not None:
            raise self.fail_with
        if self.fail_when is not None and self.fail_when in messages[-1].content:
            raise RuntimeError(f"the fake model fails on {self.fail_when!r}")
        words = self.reply.split(" ")
        for i, word in enumerate(words[:max_new_tokens]):
            if cancel.is_set():
                self.cancelled.set()
                return
            time.sleep(self.token_delay_s)
            yield word if i == 0 else " " + word


class FakeTTS:
    """60 ms of tone per word at 22,050 Hz."""

    name = "fake-tts"
    sample_rate = 22050

    def __init__(self) -> None:
        self.spoken: list[str] = []
        self.emotions: list[str | None] = []

    def synthesize(self, text: str, emotion: str | None = None) -> PCM16:
        self.spoken.append(text)
        self.emotions.append(emotion)
        seconds = 0.06 * max(1, len(text.split()))
        return (tone(seconds, self.sample_rate, 440.0, 0.3) * 32767).astype(np.int16)


def fake_engines(**overrides: object) -> EngineSet:
    engines = EngineSet(
        stt=FakeSTT(),
        vad=FakeVAD(),
        text_emotion=FakeTextEmotion(),
        speech_emotion=FakeSpeechEmotion(),
        llm=FakeLLM(),
        tts=FakeTTS(),
    )
    for key, value in overrides.items():
        setattr(engines, key, value)
    return engines
