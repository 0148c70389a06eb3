"""llm.engine openai against a REAL OpenAI-compatible server: llama.cpp's own (``python -m llama_cpp.server``,
the ``[server]`` extra) serving the GGUF that ``scripts/prepare_models.py`` exported into the model cache."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.config import Settings, default_cache_dir
from backend.engines.gguf_export import GGUF_FILE, gguf_cache_dir
from backend.engines.openai_llm import OpenAICompatLLM
from backend.engines.protocols import ChatMessage
from backend.main import create_app
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 60
ALIAS = "claritymentor"
MESSAGES = [
    ChatMessage("system", "You are ClarityMentor, a calm and kind mentor. Answer in two short sentences."),
    ChatMessage("user", "I feel stressed about my exam tomorrow."),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepared_gguf() -> Path:
    llm = Settings().llm
    path = gguf_cache_dir(llm, default_cache_dir(), llm.gguf_quant) / GGUF_FILE
    if not path.exists():
        pytest.skip(f"no prepared GGUF at {path}: run `make models` (python -m scripts.prepare_models) first")
    return path


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("sse_starlette", reason="llama-cpp-python[server] extra not installed")
    gguf = prepared_gguf()
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", ALIAS]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--n_threads_batch", "2"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.skip(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-1500:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.skip(f"llama_cpp.server did not answer within {START_TIMEOUT_S}s: {log.read_text()[-1500:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def engine(url: str) -> OpenAICompatLLM:
    return OpenAICompatLLM(Settings(llm={"engine": "openai", "base_url": url, "api_model": ALIAS}).llm)


def test_a_reply_streams_from_the_real_server(server_url: str) -> None:
    llm = engine(server_url)
    pieces = list(llm.stream(MESSAGES, 40, threading.Event()))
    assert len(pieces) > 3, pieces  # streamed in pieces, not one blob
    reply = "".join(pieces).strip()
    assert len(reply.split()) >= 3, reply
    llm.close()


def test_cancel_stops_the_real_stream(server_url: str) -> None:
    llm = engine(server_url)
    cancel = threading.Event()
    received: list[str] = []
    start = time.monotonic()
    for piece in llm.stream(MESSAGES, 600, cancel):
        received.append(piece)
        if len(received) == 2:
            cancel.set()
    assert len(received) == 2
    # The server saw the disconnect and freed its single model: the next reply starts at once.
    again = list(llm.stream(MESSAGES, 5, threading.Event()))
    assert again
    assert time.monotonic() - start < 30
    llm.close()


def test_the_app_answers_text_chat_through_the_server(server_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm={"engine": "openai", "base_url": server_url, "api_model": ALIAS})
    settings.cache_dir = default_cache_dir()  # the other engines' prepared models
    with TestClient(create_app(settings)) as client:
        health = client.get("/api/health")
        assert health.status_code == 200
        response = client.post("/api/text-chat", json={"text": "I have so much work and I can't focus."})
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["response"].split()) >= 3, body
        assert body["session_id"]
