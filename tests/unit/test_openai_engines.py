"""The OpenAI-compatible engines against a tiny in-process fake server (uvicorn in a thread on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from backend.config import LLMSettings, STTSettings, TTSSettings
from backend.core.exceptions import ModelError
from backend.engines import openai_llm
from backend.engines.openai_audio import OpenAISTT, OpenAITTS
from backend.engines.openai_llm import OpenAICompatLLM
from backend.engines.protocols import ChatMessage, LanguageModel, SpeechToText, TextToSpeech
from backend.services.llm_service import LLMService
from backend.services.model_service import ModelService, _llm_loader
from tests.conftest import make_settings
from tests.fakes import fake_engines, tone

PIECES = ["Hel", "lo", " there", "."]
TTS_RATE = 24000


@dataclass
class ServerState:
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    sent: int = 0  # pieces the slow stream has sent
    finished: threading.Event = field(default_factory=threading.Event)  # a stream ended (completed or not)
    completed: bool = False
    transcriptions: list[dict[str, Any]] = field(default_factory=list)


def sse(delta: dict[str, Any]) -> str:
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}) + "\n\n"


def fake_openai(state: ServerState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Response:
        body = await request.json()
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        model = body["model"]
        if model == "error500":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)

        async def events() -> AsyncIterator[str]:
            try:
                yield sse({"role": "assistant"})
                if model == "slow":
                    for i in range(400):
                        await asyncio.sleep(0.02)
                        state.sent += 1
                        yield sse({"content": f"w{i} "})
                else:
                    for piece in PIECES:
                        yield sse({"content": piece})
                    if model == "break":
                        raise RuntimeError("the server dies mid-reply")
                yield "data: [DONE]\n\n"
                state.completed = True
            finally:
                state.finished.set()

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> dict[str, str]:
        async with request.form() as form:
            upload: Any = form["file"]
            audio, rate = sf.read(io.BytesIO(await upload.read()), dtype="int16")
            state.transcriptions.append({**{k: v for k, v in form.items() if k != "file"}, "rate": rate})
        state.headers.append(dict(request.headers))
        return {"text": f" heard {audio.size} samples "}

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        body = await request.json()
        state.requests.append(body)
        rate = 16000 if body["model"] == "wav-model" else TTS_RATE  # half a second of a 440 Hz tone
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate) * 32767).astype("<i2")
        if body["model"] == "wav-model":  # a server that ignores response_format=pcm: a 16 kHz WAV
            buf = io.BytesIO()
            sf.write(buf, wave, rate, format="WAV", subtype="PCM_16")
            return Response(buf.getvalue(), media_type="audio/wav")
        return Response(wave.tobytes(), media_type="audio/pcm")

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    port = free_port()
    config = uvicorn.Config(
        fake_openai(state), host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "fake OpenAI server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1", state
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def fresh(server: tuple[str, ServerState]) -> tuple[str, ServerState]:
    url, state = server
    state.requests.clear()
    state.headers.clear()
    state.transcriptions.clear()
    state.sent, state.completed = 0, False
    state.finished.clear()
    return url, state


_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def opened(engine: Any) -> Any:
    _OPEN.append(engine)
    return engine


def llm(url: str, model: str = "ok", transport: httpx.BaseTransport | None = None, **extra: Any) -> OpenAICompatLLM:
    settings = LLMSettings(engine="openai", base_url=url, api_model=model, **extra)
    return opened(OpenAICompatLLM(settings, transport=transport))  # type: ignore[no-any-return]


MESSAGES = [ChatMessage("system", "You are a mentor."), ChatMessage("user", "Hi")]


def test_pieces_stream_in_order_with_the_request_we_mean(fresh: tuple[str, ServerState]) -> None:
    url, state = fresh
    engine = llm(url, temperature=0.3)
    assert isinstance(engine, LanguageModel)
    assert list(engine.stream(MESSAGES, 17, threading.Event())) == PIECES
    body = state.requests[0]
    assert body["stream"] is True and body["max_tokens"] == 17 and body["temperature"] == 0.3
    assert body["messages"] == [{"role": "system", "content": "You are a mentor."}, {"role": "user", "content": "Hi"}]
    assert "repetition_penalty" not in body  # OpenAI rejects unknown fields
    assert engine.count_tokens("12345") == 2 and engine.count_tokens("") == 0


def test_cancel_closes_the_server_stream(fresh: tuple[str, ServerState]) -> None:
    url, state = fresh
    cancel = threading.Event()
    received = []
    for piece in llm(url, "slow").stream(MESSAGES, 400, cancel):
        received.append(piece)
        if len(received) == 3:
            cancel.set()
    assert len(received) == 3
    assert state.finished.wait(5), "the server never saw the disconnect"
    assert not state.completed
    assert state.sent < 20  # generation stopped promptly, not after all 400 pieces


def test_closing_the_iterator_closes_the_server_stream(fresh: tuple[str, ServerState]) -> None:
    url, state = fresh
    pieces = llm(url, "slow").stream(MESSAGES, 400, threading.Event())
    assert next(pieces) == "w0 "
    pieces.close()  # type: ignore[attr-defined]
    assert state.finished.wait(5) and not state.completed


class CountingTransport(httpx.HTTPTransport):
    def __init__(self, refuse_first: int = 0) -> None:
        super().__init__()
        self.calls = 0
        self.refuse_first = refuse_first

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.refuse_first:
            raise httpx.ConnectError("connection refused", request=request)
        return super().handle_request(request)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_llm, "BACKOFF_BASE_S", 0.01)


@pytest.mark.usefixtures("fast_backoff")
def test_connect_refused_is_retried_then_reported() -> None:
    transport = CountingTransport()
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    engine = llm(dead, "m", transport, retries=2)
    with pytest.raises(ModelError, match="cannot reach"):
        list(engine.stream(MESSAGES, 5, threading.Event()))
    assert transport.calls == 3


@pytest.mark.usefixtures("fast_backoff")
def test_a_refused_connection_recovers_on_retry(fresh: tuple[str, ServerState]) -> None:
    url, state = fresh
    transport = CountingTransport(refuse_first=2)
    engine = llm(url, "ok", transport, retries=2)
    assert list(engine.stream(MESSAGES, 5, threading.Event())) == PIECES
    assert transport.calls == 3 and len(state.requests) == 1


@pytest.mark.usefixtures("fast_backoff")
def test_http_500_is_not_retried(fresh: tuple[str, ServerState]) -> None:
    url, state = fresh
    with pytest.raises(ModelError, match=r"HTTP 500.*boom"):
        list(llm(url, "error500", retries=3).stream(MESSAGES, 5, threading.Event()))
    assert len(state.requests) == 1


@pytest.mark.usefixtures("fast_backoff")
def test_a_stream_broken_mid_reply_is_not_retried(fresh: tuple[str, ServerState]) -> None:
    url, state = fresh
    received: list[str] = []
    with pytest.raises(ModelError, match="stream broke"):
        for piece in llm(url, "break", retries=3).stream(MESSAGES, 5, threading.Event()):
            received.append(piece)
    assert received == PIECES and len(state.requests) == 1


def test_cancel_during_backoff_gives_up_quietly() -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    dead = f"http://127.0.0.1:{free_port()}/v1"
    start = time.monotonic()
    assert list(llm(dead, retries=5).stream(MESSAGES, 5, cancel)) == []
    assert time.monotonic() - start < 1.0


def test_the_key_comes_from_the_named_environment_variable(
    fresh: tuple[str, ServerState], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = fresh
    monkeypatch.setenv("CLARITY_TEST_LLM_KEY", "sk-test-123")
    list(llm(url, api_key_env="CLARITY_TEST_LLM_KEY").stream(MESSAGES, 5, threading.Event()))
    monkeypatch.delenv("CLARITY_TEST_LLM_KEY")
    list(llm(url, api_key_env="CLARITY_TEST_LLM_KEY").stream(MESSAGES, 5, threading.Event()))
    assert state.headers[0]["authorization"] == "Bearer sk-test-123"
    assert "authorization" not in state.headers[1]


def test_settings_need_an_address_and_a_model() -> None:
    with pytest.raises(ValidationError, match=r"llm\.base_url and llm\.api_model"):
        LLMSettings(engine="openai")
    with pytest.raises(ValidationError, match=r"stt\.base_url"):
        STTSettings(engine="openai", base_url="http://x/v1")
    with pytest.raises(ValidationError, match=r"tts\.base_url"):
        TTSSettings(engine="openai", api_model="tts-1")


async def test_the_service_streams_and_tolerates_no_turn_scorer(fresh: tuple[str, ServerState], tmp_path: Any) -> None:
    url, _ = fresh
    settings = make_settings(tmp_path, llm={"engine": "openai", "base_url": url, "api_model": "ok"})
    engine = opened(_llm_loader(settings)())
    assert isinstance(engine, OpenAICompatLLM)
    engines = fake_engines()
    engines.llm = engine
    models = ModelService(engines, settings)
    try:
        service = LLMService(models)
        assert await service.complete(service.messages([], "Hi", None)) == "Hello there."
        assert await service.sentence_end_probability("I was going to") is None  # rules decide alone
        # the remote server batches concurrent replies itself: several requests may be in flight at once
        assert models.llm_runner.max_pending == settings.llm.max_pending + settings.llm.parallel
    finally:
        models.shutdown()


def test_stt_round_trip(fresh: tuple[str, ServerState], monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = fresh
    monkeypatch.setenv("CLARITY_TEST_STT_KEY", "sk-stt")
    settings = STTSettings(engine="openai", base_url=url, api_model="whisper-1", api_key_env="CLARITY_TEST_STT_KEY")
    stt = opened(OpenAISTT(settings))
    assert isinstance(stt, SpeechToText)
    result = stt.transcribe(tone(0.5))
    assert result.text == "heard 8000 samples" and result.language == "en" and result.duration_s == 0.5
    assert state.transcriptions == [{"model": "whisper-1", "response_format": "json", "language": "en", "rate": 16000}]
    assert state.headers[0]["authorization"] == "Bearer sk-stt"
    assert stt.transcribe(tone(0.01)).text == ""  # too short to hold a word: no request
    assert len(state.transcriptions) == 1


@pytest.mark.parametrize("model", ["tts-1", "wav-model"])
def test_tts_round_trip(fresh: tuple[str, ServerState], model: str) -> None:
    url, state = fresh
    tts = opened(OpenAITTS(TTSSettings(engine="openai", base_url=url, api_model=model, voice="alloy")))
    assert isinstance(tts, TextToSpeech)
    assert tts.sample_rate == TTS_RATE
    pcm = tts.synthesize("Take a breath.", emotion="sadness")
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    # 0.5 s at the declared rate, whether the server sent raw PCM or a 16 kHz WAV (resampled to 24 kHz)
    assert abs(pcm.size - TTS_RATE // 2) < 100
    assert 0.2 < np.abs(pcm).max() / 32767 < 0.4
    body = state.requests[0]
    assert body["voice"] == "alloy" and body["response_format"] == "pcm" and body["speed"] < 1
    assert tts.synthesize("  ").size == 0
