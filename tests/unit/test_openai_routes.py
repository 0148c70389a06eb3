"""The /v1 OpenAI-compatible routes, driven by the official ``openai`` package against a real uvicorn server on
127.0.0.1 running the app on fake engines: models, transcriptions in every format, speech in every format, chat
(plain and streamed, stored exactly as sent), the safety reply, a client that leaves mid-stream, auth."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest
import soundfile as sf
from fastapi import FastAPI

from backend.api.openai_compat import OPENAI_VOICES, _chunks
from backend.config import TTSSettings
from backend.core.audio_types import PCM16
from backend.engines.espeak_tts import EspeakTTS
from backend.main import create_app
from backend.services.container import Services
from tests.conftest import make_settings
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, fake_engines, tone
from tests.live_server import serve_fakes

KEY = "k"
FAKE_REPLY = FakeLLM().reply
FAKE_TRANSCRIPT = FakeSTT().texts[0]


class VoicesTTS(FakeTTS):
    """A fake engine with several voices and a speed control, like espeak: records what each call asked for."""

    VOICES = frozenset({*OPENAI_VOICES.values(), "en-gb-x-rp"})

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str | None, float]] = []

    def has_voice(self, voice: str) -> bool:
        return voice in self.VOICES

    def synthesize(
        self, text: str, emotion: str | None = None, *, voice: str | None = None, speed: float = 1.0
    ) -> PCM16:
        self.calls.append((voice, speed))
        return super().synthesize(text, emotion)


class Live:
    def __init__(self, url: str, app: FastAPI, tts: VoicesTTS, llm: FakeLLM, key: str | None) -> None:
        self.url, self.app, self.tts, self.llm, self.key = url, app, tts, llm, key
        # the openai package insists on a key: with none configured the server ignores whatever it sends
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key=key or "unused", max_retries=0, timeout=30)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30)

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def history(self, session_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/api/sessions/{session_id}/history")
        assert response.status_code == 200, response.text
        turns: list[dict[str, Any]] = response.json()["turns"]
        return turns

    def new_session(self) -> str:
        return str(self.http.post("/api/sessions").json()["session_id"])


@pytest.fixture(scope="module", params=["keyed", "open"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Each test runs against a server with an API key (sessions owned by the key) and one without."""
    key = KEY if request.param == "keyed" else None
    tts, llm = VoicesTTS(), FakeLLM()
    engines = fake_engines(tts=tts, llm=llm)
    settings: dict[str, Any] = {
        "security": {"api_key": key, "requests_per_minute": 10_000},
        "server": {"max_upload_mb": 1.0, "max_audio_seconds": 5.0},
    }
    with serve_fakes(tmp_path_factory.mktemp("openai"), engines, **settings) as (url, app):
        live = Live(url, app, tts, llm, key)
        yield live
        live.client.close()
        live.http.close()


def wav_of(audio: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


SPEECH_WAV = wav_of(tone(2.0))


def error_code(exc: openai.APIStatusError) -> str:
    body = exc.response.json()
    assert set(body) == {"detail", "code", "error_id"}, body
    return str(body["code"])


# ---- models ------------------------------------------------------------------------------------------------------


def test_models_list_names_the_chat_stt_and_tts_models(live: Live) -> None:
    models = live.client.models.list()
    ids = {m.id for m in models.data}
    assert {"claritymentor", "whisper-1", "claritymentor-stt", "tts-1", "claritymentor-tts"} <= ids
    assert all(m.object == "model" and m.owned_by == "claritymentor" for m in models.data)
    assert live.client.models.retrieve("whisper-1").model_extra == {"capability": "transcription",
                                                                     "engine": "fake-stt"}
    with pytest.raises(openai.NotFoundError) as info:
        live.client.models.retrieve("gpt-99")
    assert error_code(info.value) == "model_not_found"


# ---- transcriptions ----------------------------------------------------------------------------------------------


def test_transcription_json_and_text(live: Live) -> None:
    result = live.client.audio.transcriptions.create(model="whisper-1", file=("a.wav", SPEECH_WAV))
    assert result.text == FAKE_TRANSCRIPT
    text = live.client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", SPEECH_WAV), response_format="text", language="en", prompt="ignored"
    )
    assert text == FAKE_TRANSCRIPT


def test_transcription_verbose_json_has_one_segment_over_the_recording(live: Live) -> None:
    result = live.client.audio.transcriptions.create(
        model="whisper-1",
        file=("a.wav", SPEECH_WAV),
        response_format="verbose_json",
        timestamp_granularities=["segment"],
    )
    assert result.text == FAKE_TRANSCRIPT
    assert result.language == "en"
    assert result.duration == pytest.approx(2.0, abs=0.01)
    assert result.segments is not None and len(result.segments) == 1
    segment = result.segments[0]
    assert (segment.start, segment.end, segment.text) == (0.0, pytest.approx(2.0, abs=0.01), FAKE_TRANSCRIPT)


def test_transcription_of_silence_has_no_segments(live: Live) -> None:
    result = live.client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", wav_of(np.zeros(16000, np.float32))), response_format="verbose_json"
    )
    assert (result.text, result.segments) == ("", [])
    assert live.client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", wav_of(np.zeros(16000, np.float32))), response_format="srt"
    ) == ""


def test_transcription_srt_and_vtt(live: Live) -> None:
    srt = live.client.audio.transcriptions.create(model="whisper-1", file=("a.wav", SPEECH_WAV), response_format="srt")
    assert srt == f"1\n00:00:00,000 --> 00:00:02,000\n{FAKE_TRANSCRIPT}\n"
    vtt = live.client.audio.transcriptions.create(model="whisper-1", file=("a.wav", SPEECH_WAV), response_format="vtt")
    assert vtt == f"WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n{FAKE_TRANSCRIPT}\n"


def test_word_timestamps_are_refused_clearly(live: Live) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        live.client.audio.transcriptions.create(
            model="whisper-1",
            file=("a.wav", SPEECH_WAV),
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert error_code(info.value) == "word_timestamps_unavailable"
    assert "word timestamps are not available" in info.value.response.json()["detail"]


def test_transcription_language_must_match_the_engine(live: Live) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        live.client.audio.transcriptions.create(model="whisper-1", file=("a.wav", SPEECH_WAV), language="fr")
    assert error_code(info.value) == "unsupported_language"


def test_transcription_limits(live: Live) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        live.client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav_of(tone(6.0))))
    assert info.value.status_code == 413 and error_code(info.value) == "audio_too_long"
    with pytest.raises(openai.APIStatusError) as info:
        live.client.audio.transcriptions.create(model="whisper-1", file=("a.bin", b"\0" * 1_200_000))
    assert info.value.status_code == 413 and error_code(info.value) == "payload_too_large"


# ---- speech ------------------------------------------------------------------------------------------------------


def test_speech_wav_is_24khz_mono(live: Live) -> None:
    response = live.client.audio.speech.with_raw_response.create(
        model="tts-1", voice="nova", input="Hello there. How are you?", response_format="wav"
    )
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["x-voice"] == OPENAI_VOICES["nova"]
    audio, rate = sf.read(io.BytesIO(response.content), dtype="int16")
    assert rate == 24000 and audio.ndim == 1
    assert len(audio) / rate == pytest.approx(0.06 * 5, abs=0.01)  # the fake speaks 60 ms a word
    assert live.tts.calls[-1] == ("en-us+f3", 1.0)


def test_speech_pcm_is_raw_24khz_pcm16(live: Live) -> None:
    data = live.client.audio.speech.create(
        model="tts-1", voice="alloy", input="One two three four.", response_format="pcm", speed=1.5
    ).read()
    assert len(data) % 2 == 0
    assert len(data) / 2 / 24000 == pytest.approx(0.24, abs=0.005)
    assert live.tts.calls[-1] == ("en-us", 1.5)


@pytest.mark.parametrize(("fmt", "media"), [("mp3", "audio/mpeg"), ("opus", "audio/ogg"), ("aac", "audio/aac"),
                                            ("flac", "audio/flac")])
def test_speech_compressed_formats_decode(live: Live, fmt: str, media: str) -> None:
    response = live.client.audio.speech.with_raw_response.create(
        model="tts-1", voice="echo", input="Hello there, friend.", response_format=fmt  # type: ignore[arg-type]
    )
    assert response.headers["content-type"] == media
    with av.open(io.BytesIO(response.content)) as container:
        stream = container.streams.audio[0]
        seconds = sum(frame.samples / frame.sample_rate for frame in container.decode(stream))
    assert seconds == pytest.approx(0.18, abs=0.08)  # codec padding and priming allowed


def test_speech_voice_names_and_errors(live: Live) -> None:
    raw = live.client.audio.speech.with_raw_response.create(
        model="tts-1", voice="en-gb-x-rp", input="Hi.", response_format="wav"  # an engine voice, by its own name
    )
    assert raw.headers["x-voice"] == "en-gb-x-rp"
    with pytest.raises(openai.BadRequestError) as info:
        live.client.audio.speech.create(model="tts-1", voice="no-such-voice", input="Hi.")
    assert error_code(info.value) == "unknown_voice"
    with pytest.raises(openai.UnprocessableEntityError):
        live.client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", speed=5.0)
    with pytest.raises(openai.BadRequestError) as info:
        live.client.audio.speech.create(
            model="tts-1", voice="alloy", input="Hi.", response_format="opus", extra_body={"sample_rate": 22050}
        )
    assert error_code(info.value) == "invalid_sample_rate"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_every_openai_voice_is_a_real_espeak_voice_and_speed_changes_the_rate() -> None:
    tts = EspeakTTS(TTSSettings())
    for name, voice in OPENAI_VOICES.items():
        assert tts.has_voice(voice), name
        assert tts.synthesize("Hello.", voice=voice).size > 0, name
    normal = tts.synthesize("I feel calm and ready for tomorrow.").size
    assert tts.synthesize("I feel calm and ready for tomorrow.", speed=2.0).size < 0.65 * normal
    assert tts.synthesize("I feel calm and ready for tomorrow.", speed=0.5).size > 1.6 * normal


# ---- chat --------------------------------------------------------------------------------------------------------


def test_chat_creates_a_session_and_continues_it(live: Live) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "ignored: the mentor has its own persona"},
        {"role": "user", "content": "I feel really stressed about my exam tomorrow."},
    ]
    raw = live.client.chat.completions.with_raw_response.create(model="claritymentor", messages=messages)
    completion = raw.parse()
    session_id = raw.headers["x-session-id"]
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == FAKE_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == len(FAKE_REPLY.split())
    extra = completion.model_extra or {}
    assert extra["claritymentor"]["session_id"] == session_id
    assert extra["claritymentor"]["emotion"]["primary_emotion"] == "fear"
    assert extra["claritymentor"]["safety"] == {"crisis": False, "category": None}

    again = live.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",  # any model name is accepted
        messages=[{"role": "user", "content": [{"type": "text", "text": "Thanks, that helps."}]}],
        extra_headers={"X-Session-ID": session_id},
    )
    assert again.headers["x-session-id"] == session_id
    live.client.chat.completions.create(model="claritymentor", messages=[{"role": "user", "content": "And now?"}],
                                        user=session_id)
    turns = live.history(session_id)
    assert [t["role"] for t in turns] == ["user", "assistant"] * 3
    assert [t["content"] for t in turns[::2]] == [messages[1]["content"], "Thanks, that helps.", "And now?"]
    assert turns[1]["content"] == FAKE_REPLY and turns[1]["outcome"] == "completed"


def test_chat_stream_sends_sentences_and_stores_what_it_sent(live: Live) -> None:
    session_id = live.new_session()
    stream = live.client.chat.completions.create(
        model="claritymentor",
        messages=[{"role": "user", "content": "I feel really stressed about my exam tomorrow."}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Session-ID": session_id},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (chunks[0].model_extra or {})["claritymentor"]["emotion"]["primary_emotion"] == "fear"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 3  # one chunk per sentence, not one at the end
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert len({c.id for c in chunks}) == 1
    content = "".join(pieces)
    assert content == FAKE_REPLY
    turns = live.history(session_id)
    assert turns[-1] == {**turns[-1], "role": "assistant", "content": content, "outcome": "completed"}


def test_crisis_message_gets_the_safety_reply(live: Live) -> None:
    before = len(live.llm.prompts)
    completion = live.client.chat.completions.create(
        model="claritymentor", messages=[{"role": "user", "content": "I want to kill myself"}]
    )
    extra = (completion.model_extra or {})["claritymentor"]
    category = extra["safety"]["category"]
    assert extra["safety"]["crisis"] is True and category
    content = completion.choices[0].message.content
    assert content == live.services.mentor.wording.reply(category) and "988" in (content or "")
    stream = live.client.chat.completions.create(
        model="claritymentor", messages=[{"role": "user", "content": "I want to kill myself"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == content
    assert len(live.llm.prompts) == before  # the model never saw either turn
    assert [t["safety"] for t in live.history(extra["session_id"])] == [True, True]


def test_client_leaving_mid_stream_stores_the_turn_as_disconnected(live: Live) -> None:
    session_id = live.new_session()
    live.llm.token_delay_s = 0.05
    try:
        stream = live.client.chat.completions.create(
            model="claritymentor",
            messages=[{"role": "user", "content": "Tell me something."}],
            stream=True,
            extra_headers={"X-Session-ID": session_id},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        stream.close()
        deadline = time.monotonic() + 10
        while len(turns := live.history(session_id)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        live.llm.token_delay_s = 0.0
    assert turns[-1]["role"] == "assistant"
    assert turns[-1]["outcome"] == "disconnected"
    assert FAKE_REPLY.startswith(turns[-1]["content"]) and turns[-1]["content"] != FAKE_REPLY


async def test_closing_the_stream_body_stores_the_turn_as_disconnected(tmp_path: Path) -> None:
    """The response closes the body generator at a yield when the client is gone between two chunks:
    GeneratorExit there must still store the assistant turn, with what was sent, as disconnected."""
    app = create_app(make_settings(tmp_path), engine_loader=lambda _s: fake_engines())
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        session_id = (await services.sessions.create()).session_id
        body = _chunks(services, session_id, "Tell me something.", False)
        assert '"role":"assistant"' in await anext(body)
        first_sentence = await anext(body)
        await body.aclose()
        await services.mentor.drain()
        turns = (await services.sessions.get(session_id)).turns
    assert [t.role for t in turns] == ["user", "assistant"]
    assert turns[1].outcome == "disconnected"
    assert turns[1].content and turns[1].content in first_sentence and turns[1].content != FAKE_REPLY


def test_model_failure_mid_stream_is_an_error_event_and_a_failed_turn(live: Live) -> None:
    session_id = live.new_session()
    live.llm.fail_when = "explode"
    try:
        stream = live.client.chat.completions.create(
            model="claritymentor", messages=[{"role": "user", "content": "please explode"}], stream=True,
            extra_headers={"X-Session-ID": session_id},
        )
        with pytest.raises(openai.APIError, match="language model failed"):
            list(stream)
        with pytest.raises(openai.InternalServerError) as info:
            live.client.chat.completions.create(model="claritymentor",
                                                messages=[{"role": "user", "content": "explode again"}])
        assert error_code(info.value) == "model_error"
    finally:
        live.llm.fail_when = None
    turns = live.history(session_id)
    assert [(t["role"], t["outcome"]) for t in turns] == [("user", None), ("assistant", "failed")]


def test_chat_errors(live: Live) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        live.client.chat.completions.create(
            model="claritymentor", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Session-ID": "nope"}
        )
    assert error_code(info.value) == "session_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        live.client.chat.completions.create(model="claritymentor", messages=[{"role": "assistant", "content": "hi"}])
    assert error_code(bad.value) == "no_user_message"
    with pytest.raises(openai.UnprocessableEntityError):
        live.client.chat.completions.create(model="claritymentor", messages=[{"role": "user", "content": "x" * 3000}])


def test_wrong_key_is_401(live: Live) -> None:
    if live.key is None:
        pytest.skip("no key configured: every key is accepted")
    wrong = openai.OpenAI(base_url=f"{live.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.models.list()
    assert info.value.status_code == 401 and error_code(info.value) == "unauthorized"
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="claritymentor", messages=[{"role": "user", "content": "hi"}])
    wrong.close()


def test_openapi_documents_the_v1_routes(live: Live) -> None:
    paths = httpx.get(f"{live.url}/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/audio/transcriptions", "/v1/audio/speech", "/v1/chat/completions"} <= set(paths)

