"""Speech-to-text and text-to-speech over OpenAI-compatible audio endpoints (OpenAI, speaches, vLLM, LocalAI...).

STT posts the utterance as a 16 kHz PCM16 WAV to ``{base_url}/audio/transcriptions`` (``response_format=json``).
TTS posts to ``{base_url}/audio/speech`` asking for raw ``pcm`` (PCM16 mono at ``tts.sample_rate``: OpenAI's is
24 kHz); a server that answers with a WAV instead is decoded and resampled to the declared rate, so the rate the
client is told is always the rate it gets. The API key comes from the environment variable named in the settings.
"""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import soundfile as sf

from backend.config import STTSettings, TTSSettings
from backend.core.audio_utils import PCM16, STT_RATE, FloatAudio, encode_wav, float_to_pcm16, resample, to_mono
from backend.core.exceptions import ModelError
from backend.engines.openai_llm import auth_headers, remote_name, server_error
from backend.engines.protocols import Transcription

# The user's emotion shapes the delivery through the one knob OpenAI's speech API has: speed (espeak's factors).
SPEEDS: dict[str, float] = {"sadness": 0.9, "fear": 0.92, "anger": 0.95, "joy": 1.04}


def _client(
    base_url: str | None, api_key_env: str, timeout_s: float, transport: httpx.BaseTransport | None
) -> httpx.Client:
    if not base_url:
        raise ValueError("engine openai needs base_url")
    return httpx.Client(
        base_url=base_url.rstrip("/") + "/",
        timeout=httpx.Timeout(timeout_s),
        headers=auth_headers(api_key_env),
        transport=transport,
    )


def _post(client: httpx.Client, path: str, what: str, **kwargs: Any) -> httpx.Response:
    try:
        response = client.post(path, **kwargs)
    except httpx.HTTPError as exc:
        raise ModelError(f"cannot reach the {what} server: {type(exc).__name__}: {exc}", status_code=502) from exc
    if response.status_code >= 400:
        raise server_error(response, f"the {what} server")
    return response


class OpenAISTT:
    device = "remote"

    def __init__(self, settings: STTSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        if not settings.api_model:
            raise ValueError("stt.engine openai needs stt.api_model")
        self.name = remote_name(settings.api_model, settings.base_url)
        self._settings = settings
        self._client = _client(settings.base_url, settings.api_key_env, settings.timeout_s, transport)

    def transcribe(self, audio: FloatAudio) -> Transcription:
        duration = audio.size / STT_RATE
        language = self._settings.language or "en"
        if audio.size < STT_RATE // 10:
            return Transcription(text="", language=language, duration_s=duration)
        data: dict[str, str] = {"model": str(self._settings.api_model), "response_format": "json"}
        if self._settings.language:
            data["language"] = self._settings.language
        wav = encode_wav(float_to_pcm16(audio), STT_RATE)
        files = {"file": ("audio.wav", wav, "audio/wav")}
        response = _post(self._client, "audio/transcriptions", "speech-to-text", data=data, files=files)
        text = response.json().get("text", "")
        return Transcription(text=str(text).strip(), language=language, duration_s=duration)

    def close(self) -> None:
        self._client.close()


class OpenAITTS:
    device = "remote"

    def __init__(self, settings: TTSSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        if not settings.api_model:
            raise ValueError("tts.engine openai needs tts.api_model")
        self.name = remote_name(settings.api_model, settings.base_url) + f", voice {settings.voice}"
        self.sample_rate = settings.sample_rate
        self._settings = settings
        self._client = _client(settings.base_url, settings.api_key_env, settings.timeout_s, transport)

    def synthesize(self, text: str, emotion: str | None = None) -> PCM16:
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        payload = {
            "model": self._settings.api_model,
            "input": text,
            "voice": self._settings.voice,
            "response_format": "pcm",
            "speed": SPEEDS.get(emotion or "neutral", 1.0),
        }
        body = _post(self._client, "audio/speech", "text-to-speech", json=payload).content
        return self._to_pcm(body)

    def _to_pcm(self, body: bytes) -> PCM16:
        if body[:4] != b"RIFF":  # raw PCM16 little-endian mono at the declared rate
            return np.frombuffer(body[: len(body) - len(body) % 2], dtype="<i2").astype(np.int16)
        audio, rate = sf.read(io.BytesIO(body), dtype="float32", always_2d=False)
        mono = resample(to_mono(np.asarray(audio, dtype=np.float32)), int(rate), self.sample_rate)
        return float_to_pcm16(mono).astype(np.int16)

    def close(self) -> None:
        self._client.close()
