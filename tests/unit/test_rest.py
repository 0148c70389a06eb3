"""REST API behaviour on fake engines and a SQLite file in tmp: shapes, history, errors, safety, auth, overload."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from httpx import Response

from backend.config import EMOTIONS
from backend.core.exceptions import Overloaded
from backend.engines.protocols import EngineSet
from tests.conftest import make_settings
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, silence, tone

ClientFactory = Callable[..., TestClient]
FAKE_REPLY = FakeLLM().reply
FAKE_TRANSCRIPT = FakeSTT().texts[0]


def fake_llm(engines: EngineSet) -> FakeLLM:
    llm = engines.llm
    assert isinstance(llm, FakeLLM)
    return llm


def assert_error(response: Response, status: int, code: str) -> dict[str, Any]:
    """Every REST error has the same body: {detail, code, error_id}, nothing else."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "code", "error_id"}, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["error_id"], str) and body["error_id"]
    return body


def new_session(client: TestClient) -> str:
    response = client.post("/api/sessions")
    assert response.status_code == 201, response.text
    return str(response.json()["session_id"])


def chat(client: TestClient, text: str, session_id: str | None = None) -> Response:
    body: dict[str, Any] = {"text": text}
    if session_id is not None:
        body["session_id"] = session_id
    return client.post("/api/text-chat", json=body)


def history(client: TestClient, session_id: str) -> dict[str, Any]:
    response = client.get(f"/api/sessions/{session_id}/history")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wav_bytes(audio: np.ndarray, rate: int, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=fmt)
    return buf.getvalue()


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="int16")
    return audio, rate


# --- health and sessions -------------------------------------------------------------------------------------------


def test_health_reports_status_timestamp_and_every_model(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert {"status", "models_loaded", "timestamp", "models"} <= set(body)
    assert body["status"] == "healthy"
    assert body["models_loaded"] is True
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    assert set(body["models"]) == {"stt", "emotion", "speech_emotion", "llm", "tts", "vad"}
    for info in body["models"].values():
        assert info["loaded"] is True
        assert isinstance(info["name"], str) and info["name"]
    assert body["models"]["llm"]["name"] == "fake-llm"
    assert body["models"]["stt"]["name"] == "fake-stt"
    assert body["models"]["tts"]["name"] == "fake-tts"


def test_create_session_returns_201_with_id_and_created_at(client: TestClient) -> None:
    response = client.post("/api/sessions")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"session_id", "created_at"}
    assert isinstance(body["session_id"], str) and body["session_id"]
    datetime.fromisoformat(body["created_at"])
    assert new_session(client) != body["session_id"]  # every session gets its own id


def test_history_of_a_new_session_is_empty(client: TestClient) -> None:
    session_id = new_session(client)
    body = history(client, session_id)
    assert body["session_id"] == session_id
    assert body["turns"] == []
    assert body["emotion_timeline"] == []
    datetime.fromisoformat(body["created_at"])


def test_history_timestamps_are_utc_like_the_create_response(client: TestClient) -> None:
    created = client.post("/api/sessions").json()
    assert chat(client, "hello", created["session_id"]).status_code == 200
    body = history(client, created["session_id"])
    assert body["created_at"] == created["created_at"]
    for turn in body["turns"]:
        assert datetime.fromisoformat(turn["timestamp"]).utcoffset() is not None


# --- text chat -------------------------------------------------------------------------------------------------------


def test_text_chat_without_session_id_creates_a_session(client: TestClient) -> None:
    response = chat(client, "I feel so stressed about my exam")
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"session_id", "response", "emotion"} <= set(body)
    assert body["response"] == FAKE_REPLY
    assert body["safety"] is False
    emotion = body["emotion"]
    assert emotion["primary_emotion"] == "fear"  # FakeTextEmotion: "stressed" -> fear
    assert emotion["confidence"] == pytest.approx(0.7)
    assert set(emotion["scores"]) == set(EMOTIONS)
    assert sum(emotion["scores"].values()) == pytest.approx(1.0, abs=1e-3)

    turns = history(client, body["session_id"])["turns"]
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "I feel so stressed about my exam"),
        ("assistant", FAKE_REPLY),
    ]


def test_text_chat_twice_stores_four_turns_in_order(client: TestClient) -> None:
    session_id = new_session(client)
    first = chat(client, "I am so happy today", session_id)
    second = chat(client, "but now I am sad", session_id)
    assert first.status_code == second.status_code == 200
    assert first.json()["session_id"] == second.json()["session_id"] == session_id

    body = history(client, session_id)
    turns = body["turns"]
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "I am so happy today"),
        ("assistant", FAKE_REPLY),
        ("user", "but now I am sad"),
        ("assistant", FAKE_REPLY),
    ]
    assert turns[0]["emotion"] == {"primary_emotion": "joy", "confidence": pytest.approx(0.7)}
    assert turns[2]["emotion"] == {"primary_emotion": "sadness", "confidence": pytest.approx(0.7)}
    assert turns[1]["emotion"] is None
    assert turns[3]["emotion"] is None
    assert all(t["safety"] is False and t["interrupted"] is False for t in turns)

    stamps = [datetime.fromisoformat(t["timestamp"]) for t in turns]
    assert stamps == sorted(stamps)

    timeline = body["emotion_timeline"]
    assert [p["primary_emotion"] for p in timeline] == ["joy", "sadness"]
    assert [p["timestamp"] for p in timeline] == [turns[0]["timestamp"], turns[2]["timestamp"]]
    assert all(p["confidence"] == pytest.approx(0.7) for p in timeline)


def test_history_reaches_the_model_on_the_next_turn(client: TestClient, engines: EngineSet) -> None:
    llm = fake_llm(engines)
    session_id = new_session(client)
    assert chat(client, "my exam is tomorrow", session_id).status_code == 200
    before = len(llm.prompts)
    assert chat(client, "what should I revise first", session_id).status_code == 200
    assert len(llm.prompts) == before + 1

    prompt = llm.prompts[-1]
    contents = [m.content for m in prompt]
    assert prompt[0].role == "system"
    assert any(m.role == "user" and "my exam is tomorrow" in m.content for m in prompt[1:-1])
    assert any(m.role == "assistant" and FAKE_REPLY in m.content for m in prompt[1:-1])
    assert prompt[-1].role == "user" and "what should I revise first" in prompt[-1].content
    # chronological: the first exchange comes before the new question
    first_user = next(i for i, c in enumerate(contents) if "my exam is tomorrow" in c)
    assert first_user < len(contents) - 1


def test_sessions_do_not_leak_into_each_other(client: TestClient, engines: EngineSet) -> None:
    llm = fake_llm(engines)
    assert chat(client, "secret about session A", new_session(client)).status_code == 200
    other = new_session(client)
    assert chat(client, "hello from B", other).status_code == 200
    assert not any("secret about session A" in m.content for m in llm.prompts[-1])
    assert [t["content"] for t in history(client, other)["turns"]] == ["hello from B", FAKE_REPLY]


# --- unknown sessions and delete -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/sessions/{sid}/history", None),
        ("DELETE", "/api/sessions/{sid}", None),
        ("POST", "/api/text-chat", {"text": "hello"}),
    ],
)
def test_unknown_session_is_404(client: TestClient, method: str, path: str, body: dict[str, str] | None) -> None:
    sid = "no-such-session"
    if body is not None:
        body = {**body, "session_id": sid}
    response = client.request(method, path.format(sid=sid), json=body)
    assert_error(response, 404, "session_not_found")
    # nothing was created as a side effect
    assert_error(client.get(f"/api/sessions/{sid}/history"), 404, "session_not_found")


def test_delete_session_removes_it_and_its_history(client: TestClient) -> None:
    session_id = new_session(client)
    assert chat(client, "something to forget", session_id).status_code == 200
    keep = new_session(client)

    response = client.delete(f"/api/sessions/{session_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(client.get(f"/api/sessions/{session_id}/history"), 404, "session_not_found")
    assert_error(client.delete(f"/api/sessions/{session_id}"), 404, "session_not_found")
    assert_error(chat(client, "still there?", session_id), 404, "session_not_found")
    assert history(client, keep)["turns"] == []  # other sessions are untouched


# --- input limits and validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/text-chat", "/api/emotion", "/api/speak"])
def test_text_over_the_default_limit_is_422(client: TestClient, path: str) -> None:
    body = assert_error(client.post(path, json={"text": "a" * 2001}), 422, "text_too_long")
    assert "2000" in body["detail"]
    assert client.post(path, json={"text": "a" * 2000}).status_code == 200


def test_text_limit_follows_settings(client_factory: ClientFactory, tmp_path: Path) -> None:
    client = client_factory(settings=make_settings(tmp_path, server={"max_text_chars": 10}))
    session_id = new_session(client)
    body = assert_error(chat(client, "eleven char", session_id), 422, "text_too_long")
    assert "10" in body["detail"]
    assert history(client, session_id)["turns"] == []  # a rejected message is not stored
    assert_error(client.post("/api/emotion", json={"text": "x" * 11}), 422, "text_too_long")
    assert chat(client, "ten chars!", session_id).status_code == 200


@pytest.mark.parametrize("path", ["/api/text-chat", "/api/emotion", "/api/speak"])
@pytest.mark.parametrize("payload", [{"text": ""}, {}, {"text": None}])
def test_missing_or_empty_text_is_a_validation_error(client: TestClient, path: str, payload: dict[str, Any]) -> None:
    body = assert_error(client.post(path, json=payload), 422, "validation_error")
    assert "text" in body["detail"]


def test_non_json_body_is_a_validation_error(client: TestClient) -> None:
    response = client.post("/api/text-chat", content=b"not json", headers={"content-type": "application/json"})
    assert_error(response, 422, "validation_error")


def test_whitespace_only_text_is_rejected(client: TestClient) -> None:
    assert chat(client, "   \n\t ").status_code == 422


# --- emotion, speak, transcribe --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label"), [("I am so happy", "joy"), ("that makes me angry", "anger"), ("the weather", "neutral")]
)
def test_emotion_scores_cover_seven_labels(client: TestClient, text: str, label: str) -> None:
    response = client.post("/api/emotion", json={"text": text})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"primary_emotion", "confidence", "scores"}
    assert body["primary_emotion"] == label
    assert set(body["scores"]) == set(EMOTIONS)
    assert sum(body["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert body["confidence"] == pytest.approx(max(body["scores"].values()))
    assert body["scores"][label] == body["confidence"]


def test_speak_returns_wav_at_the_voice_rate(client: TestClient, engines: EngineSet) -> None:
    response = client.post("/api/speak", json={"text": "Take one small step today."})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("audio/wav")
    audio, rate = read_wav(response.content)
    assert rate == 22050
    assert audio.size > 0
    assert audio.size / rate == pytest.approx(0.06 * 5, abs=0.01)  # FakeTTS: 60 ms per word
    assert np.abs(audio).max() > 1000  # it is a tone, not silence
    tts = engines.tts
    assert isinstance(tts, FakeTTS)
    assert tts.spoken[-1] == "Take one small step today."


def test_speak_resamples_to_the_requested_rate(client: TestClient) -> None:
    response = client.post("/api/speak", json={"text": "Take one small step today.", "sample_rate": 16000})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("audio/wav")
    audio, rate = read_wav(response.content)
    assert rate == 16000
    assert audio.size / rate == pytest.approx(0.06 * 5, abs=0.01)


def test_speak_rejects_an_unsupported_rate(client: TestClient) -> None:
    body = assert_error(
        client.post("/api/speak", json={"text": "hello", "sample_rate": 12345}), 400, "invalid_sample_rate"
    )
    assert "16000" in body["detail"]


@pytest.mark.parametrize(("fmt", "name"), [("WAV", "clip.wav"), ("FLAC", "clip.flac")])
def test_transcribe_decodes_stereo_44k_upload(client: TestClient, fmt: str, name: str) -> None:
    mono = tone(1.5, rate=44100)
    data = wav_bytes(np.stack([mono, mono], axis=1), 44100, fmt)
    response = client.post("/api/transcribe", files={"file": (name, data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"text", "language", "duration_s"}
    assert body["text"] == FAKE_TRANSCRIPT
    assert body["language"] == "en"
    assert body["duration_s"] == pytest.approx(1.5, abs=0.01)


def test_transcribe_silence_gives_empty_text(client: TestClient) -> None:
    data = wav_bytes(silence(1.0, rate=22050), 22050)
    response = client.post("/api/transcribe", files={"file": ("quiet.wav", data, "audio/wav")})
    assert response.status_code == 200, response.text
    assert response.json()["text"] == ""
    assert response.json()["duration_s"] == pytest.approx(1.0, abs=0.01)


def test_transcribe_rejects_non_audio(client: TestClient) -> None:
    response = client.post("/api/transcribe", files={"file": ("x.wav", b"hello world", "audio/wav")})
    assert_error(response, 415, "unsupported_audio")


def test_transcribe_rejects_an_empty_file(client: TestClient) -> None:
    response = client.post("/api/transcribe", files={"file": ("x.wav", b"", "audio/wav")})
    assert_error(response, 400, "empty_audio")


def test_transcribe_rejects_a_file_over_the_upload_limit(client_factory: ClientFactory, tmp_path: Path) -> None:
    client = client_factory(settings=make_settings(tmp_path, server={"max_upload_mb": 0.01}))
    big = wav_bytes(tone(1.0, rate=16000), 16000)  # ~32 KB > 10.5 KB
    assert_error(
        client.post("/api/transcribe", files={"file": ("big.wav", big, "audio/wav")}), 413, "payload_too_large"
    )
    small = wav_bytes(tone(0.1, rate=16000), 16000)
    assert client.post("/api/transcribe", files={"file": ("s.wav", small, "audio/wav")}).status_code == 200


def test_transcribe_without_a_file_is_a_validation_error(client: TestClient) -> None:
    assert_error(client.post("/api/transcribe"), 422, "validation_error")


# --- safety ----------------------------------------------------------------------------------------------------------


def test_crisis_text_gets_resources_not_the_model(client: TestClient, engines: EngineSet) -> None:
    llm = fake_llm(engines)
    session_id = new_session(client)
    before = len(llm.prompts)
    response = chat(client, "I want to kill myself", session_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["safety"] is True
    assert "988" in body["response"]
    assert body["response"] != FAKE_REPLY
    assert len(llm.prompts) == before  # the model never saw this turn

    turns = history(client, session_id)["turns"]
    assert [(t["role"], t["safety"]) for t in turns] == [("user", True), ("assistant", True)]
    assert turns[0]["content"] == "I want to kill myself"
    assert turns[1]["content"] == body["response"]


def test_idiom_is_not_a_crisis(client: TestClient, engines: EngineSet) -> None:
    llm = fake_llm(engines)
    before = len(llm.prompts)
    response = chat(client, "this deadline is killing me")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["safety"] is False
    assert body["response"] == FAKE_REPLY
    assert len(llm.prompts) == before + 1
    assert "this deadline is killing me" in llm.prompts[-1][-1].content


# --- API key ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def keyed_client(client_factory: ClientFactory, tmp_path: Path) -> TestClient:
    return client_factory(settings=make_settings(tmp_path, security={"api_key": "s3cret"}))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": "s3cret"}],
    ids=["none", "wrong-bearer", "wrong-x-api-key", "no-bearer-prefix"],
)
def test_api_key_is_required_when_configured(keyed_client: TestClient, headers: dict[str, str]) -> None:
    assert_error(keyed_client.post("/api/text-chat", json={"text": "hi"}, headers=headers), 401, "unauthorized")
    assert_error(keyed_client.post("/api/sessions", headers=headers), 401, "unauthorized")
    assert_error(keyed_client.post("/api/emotion", json={"text": "hi"}, headers=headers), 401, "unauthorized")


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer s3cret"}, {"authorization": "bearer s3cret"}, {"X-API-Key": "s3cret"}],
    ids=["bearer", "bearer-lowercase", "x-api-key"],
)
def test_right_api_key_is_accepted(keyed_client: TestClient, headers: dict[str, str]) -> None:
    response = keyed_client.post("/api/text-chat", json={"text": "hi"}, headers=headers)
    assert response.status_code == 200, response.text
    session_id = response.json()["session_id"]
    assert keyed_client.get(f"/api/sessions/{session_id}/history", headers=headers).status_code == 200


def test_health_stays_open_with_an_api_key(keyed_client: TestClient) -> None:
    response = keyed_client.get("/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_no_key_needed_when_none_is_configured(client: TestClient) -> None:
    assert chat(client, "hi").status_code == 200


# --- engine failure and overload -------------------------------------------------------------------------------------


def test_llm_failure_is_a_500_and_keeps_the_user_turn(client: TestClient, engines: EngineSet) -> None:
    llm = fake_llm(engines)
    session_id = new_session(client)
    llm.fail_with = RuntimeError("boom")
    assert_error(chat(client, "please remember this", session_id), 500, "model_error")

    turns = history(client, session_id)["turns"]
    # The user's words are kept; the reply is recorded as failed (nothing was said), never as an interruption.
    assert [(t["role"], t["content"], t["outcome"]) for t in turns] == [
        ("user", "please remember this", None),
        ("assistant", "", "failed"),
    ]
    assert turns[1]["interrupted"] is False

    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"

    llm.fail_with = None  # the engine recovers; the same session carries on
    response = chat(client, "are you back?", session_id)
    assert response.status_code == 200, response.text
    assert response.json()["response"] == FAKE_REPLY
    assert [t["role"] for t in history(client, session_id)["turns"]] == ["user", "assistant", "user", "assistant"]
    assert not any("interrupted" in m.content for m in llm.prompts[-1])  # a failure is not shown as a cut-off
    assert client.app.state.services.models.llm_runner.pending == 0  # type: ignore[attr-defined]


def test_llm_queue_full_is_503_overloaded(client: TestClient) -> None:
    runner = client.app.state.services.models.llm_runner  # type: ignore[attr-defined]
    runner.max_pending = 0
    assert_error(chat(client, "hello"), 503, "overloaded")
    assert client.get("/api/health").status_code == 200
    runner.max_pending = 8
    assert chat(client, "hello again").status_code == 200


def test_stt_and_tts_queues_full_are_503_overloaded(client: TestClient) -> None:
    models = client.app.state.services.models  # type: ignore[attr-defined]
    models.stt_runner.max_pending = 0
    models.tts_runner.max_pending = 0
    clip = wav_bytes(tone(0.5), 16000)
    assert_error(client.post("/api/transcribe", files={"file": ("a.wav", clip, "audio/wav")}), 503, "overloaded")
    assert_error(client.post("/api/speak", json={"text": "hello"}), 503, "overloaded")
    models.stt_runner.max_pending = 16
    models.tts_runner.max_pending = 32
    assert client.post("/api/transcribe", files={"file": ("a.wav", clip, "audio/wav")}).status_code == 200
    assert client.post("/api/speak", json={"text": "hello"}).status_code == 200


def test_concurrent_replies_beyond_the_llm_queue_are_rejected_not_hung(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    services.models.llm_runner.max_pending = 1
    messages = services.llm.messages([], "hello", None)

    async def two_at_once() -> list[object]:
        both = asyncio.gather(services.llm.complete(messages), services.llm.complete(messages), return_exceptions=True)
        return await asyncio.wait_for(both, 3)

    results = client.portal.call(two_at_once)  # type: ignore[union-attr]
    assert FAKE_REPLY in results
    assert any(isinstance(r, Overloaded) for r in results)


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/api/nope"), 404, "not_found")
    assert_error(client.get("/api/text-chat"), 405, "method_not_allowed")
