"""The seed protocol on /ws/voice, on fake engines: order of events, audio format, errors, sessions."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from backend.engines.protocols import EngineSet
from tests.fakes import FakeLLM, FakeSTT, fake_engines, pcm_bytes, silence, tone
from tests.ws_helpers import one_turn, receive_until, speak


def test_turn_follows_the_seed_order(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["session_id"]
        got = one_turn(ws)
    seed_order = [t for t in got.order if t in ("transcript", "emotion", "response", "audio_end", "turn_end")]
    assert seed_order == ["transcript", "emotion", "response", "audio_end", "turn_end"]
    assert got.order.index("status") < got.order.index("transcript")
    assert got.order.index("audio_start") < got.order.index("<audio>")
    assert got.order[-2:] == ["metrics", "turn_end"]
    assert "stressed" in got.one("transcript")["text"]
    assert got.one("emotion")["data"]["primary_emotion"] == "fear"
    assert got.one("response")["text"].startswith("That sounds really stressful.")
    start = got.one("audio_start")
    assert start == {**start, "sample_rate": 22050, "format": "pcm_s16le", "channels": 1}


def test_audio_frames_are_pcm16_and_at_most_100ms(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        got = one_turn(ws)
    assert got.audio, "no reply audio"
    assert all(len(frame) % 2 == 0 and len(frame) <= 2 * 2205 for frame in got.audio)
    total_s = sum(len(f) for f in got.audio) / 2 / 22050
    assert total_s == pytest.approx(got.one("audio_end")["duration_ms"] / 1000, rel=0.01)
    samples = np.frombuffer(b"".join(got.audio), dtype="<i2")
    assert np.abs(samples).max() > 1000  # real signal, not silence


def test_client_can_ask_for_an_output_rate(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        ws.send_json({"type": "config", "output_sample_rate": 48000})
        assert ws.receive_json()["output_sample_rate"] == 48000
        got = one_turn(ws)
    assert got.one("audio_start")["sample_rate"] == 48000
    total_s = sum(len(f) for f in got.audio) / 2 / 48000
    assert total_s == pytest.approx(got.one("audio_end")["duration_ms"] / 1000, rel=0.02)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_declared_input_rate_is_resampled(client_factory: Callable[..., TestClient], rate: int) -> None:
    engines = fake_engines()
    client = client_factory(engines)
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        ws.send_json({"type": "config", "sample_rate": rate})
        assert ws.receive_json()["input_sample_rate"] == rate
        for _ in range(10):
            ws.send_bytes(pcm_bytes(tone(0.1, rate)))
        for _ in range(10):
            ws.send_bytes(pcm_bytes(silence(0.1, rate)))
        got = receive_until(ws, "turn_end")
    assert got.one("metrics")["user_audio_seconds"] == pytest.approx(1.2, abs=0.35)


def test_end_of_speech_ends_the_turn_without_trailing_silence(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        for _ in range(8):
            ws.send_bytes(pcm_bytes(tone(0.1)))
        ws.send_json({"type": "end_of_speech"})
        got = receive_until(ws, "turn_end")
    assert got.one("transcript")["text"]


def test_silence_gives_no_turn_and_says_no_speech(client: TestClient, engines: EngineSet) -> None:
    calls_before = engines.stt.calls  # type: ignore[attr-defined]
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        for _ in range(20):
            ws.send_bytes(pcm_bytes(silence(0.1)))
        ws.send_json({"type": "end_of_speech"})
        got = receive_until(ws, "error")
        ws.send_json({"type": "ping"})
        receive_until(ws, "pong", got)
    assert got.one("error")["code"] == "no_speech"
    assert "transcript" not in got.order
    assert engines.stt.calls == calls_before  # type: ignore[attr-defined]  # nothing reached Whisper


def test_noise_that_whisper_hears_nothing_in_is_not_a_turn(client_factory: Callable[..., TestClient]) -> None:
    stt = FakeSTT("")
    client = client_factory(fake_engines(stt=stt))
    with client.websocket_connect("/ws/voice") as ws:
        session_id = ws.receive_json()["session_id"]
        speak(ws)
        got = receive_until(ws, "error")
    assert got.one("error")["code"] == "no_speech"
    assert client.get(f"/api/sessions/{session_id}/history").json()["turns"] == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        (json.dumps({"type": "dance"}), "unknown_type"),
        (json.dumps(["config"]), "unknown_type"),
        (json.dumps({"type": "config", "sample_rate": 3}), "invalid_message"),
        (json.dumps({"type": "config", "output_sample_rate": 11025}), "invalid_message"),
        (b"\x01\x02\x03", "invalid_audio"),
    ],
)
def test_bad_frames_get_an_error_and_the_socket_stays_usable(client: TestClient, frame: str | bytes, code: str) -> None:
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        if isinstance(frame, bytes):
            ws.send_bytes(frame)
        else:
            ws.send_text(frame)
        error = ws.receive_json()
        assert error["type"] == "error" and error["code"] == code and error["message"]
        got = one_turn(ws)  # still fully usable
    assert got.one("response")["text"]


def test_many_turns_on_one_connection_are_all_stored(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice") as ws:
        session_id = ws.receive_json()["session_id"]
        turn_ids = {one_turn(ws).one("turn_end")["turn_id"] for _ in range(3)}
    assert len(turn_ids) == 3
    history = client.get(f"/api/sessions/{session_id}/history").json()
    assert [t["role"] for t in history["turns"]] == ["user", "assistant"] * 3
    assert all(t["emotion"]["primary_emotion"] == "fear" for t in history["turns"][::2])
    assert len(history["emotion_timeline"]) == 3


def test_joining_an_existing_session_continues_its_history(client: TestClient, engines: EngineSet) -> None:
    session_id = client.post("/api/sessions").json()["session_id"]
    client.post("/api/text-chat", json={"text": "I start a new job on Monday.", "session_id": session_id})
    with client.websocket_connect(f"/ws/voice?session_id={session_id}") as ws:
        assert ws.receive_json()["session_id"] == session_id
        one_turn(ws)
    history = client.get(f"/api/sessions/{session_id}/history").json()
    assert len(history["turns"]) == 4
    last_prompt = engines.llm.prompts[-1]  # type: ignore[attr-defined]
    assert any("new job on Monday" in m.content for m in last_prompt)


def test_joining_by_config_message(client: TestClient) -> None:
    session_id = client.post("/api/sessions").json()["session_id"]
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        ws.send_json({"type": "config", "session_id": "no-such-session"})
        assert ws.receive_json()["code"] == "session_not_found"
        ws.send_json({"type": "config", "session_id": session_id})
        assert ws.receive_json() == {**ws_ready_shape(), "session_id": session_id}
        one_turn(ws)
    assert len(client.get(f"/api/sessions/{session_id}/history").json()["turns"]) == 2


def ws_ready_shape() -> dict[str, object]:
    return {
        "type": "ready",
        "input_sample_rate": 16000,
        "output_sample_rate": 22050,
        "audio_format": "pcm_s16le",
        "protocol_version": 2,
    }


def test_unknown_session_in_url_is_refused_with_4404(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice?session_id=nope") as ws:
        assert ws.receive_json()["code"] == "session_not_found"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4404


def test_api_key_is_required_when_configured(client_factory: Callable[..., TestClient], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings

    engines = fake_engines()
    client = client_factory(engines, settings=make_settings(tmp_path, security={"api_keys": ["k3y", "other"]}))
    warm_up_calls = engines.stt.calls  # type: ignore[attr-defined]
    with client.websocket_connect("/ws/voice") as ws:
        ws.send_json({"type": "auth", "api_key": "wrong"})
        assert ws.receive_json()["code"] == "unauthorized"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008
    assert engines.stt.calls == warm_up_calls  # type: ignore[attr-defined]  # refused before any model ran
    with pytest.raises(WebSocketDisconnect) as in_url:  # a key in the URL ends up in logs: refused outright
        with client.websocket_connect("/ws/voice?api_key=k3y") as ws:
            ws.receive_json()
    assert in_url.value.code == 1008
    with client.websocket_connect("/ws/voice") as ws:  # browsers: the first message
        ws.send_json({"type": "auth", "api_key": "k3y"})
        session_id = ws.receive_json()["session_id"]
    with client.websocket_connect("/ws/voice", subprotocols=["clarity", "bearer.k3y"]) as ws:
        assert ws.accepted_subprotocol == "clarity"
        assert ws.receive_json()["type"] == "ready"
    with client.websocket_connect(f"/ws/voice?session_id={session_id}", headers={"X-API-Key": "other"}) as ws:
        assert ws.receive_json()["code"] == "session_not_found"  # another key's session does not exist for it
    with client.websocket_connect(f"/ws/voice?session_id={session_id}", headers={"Authorization": "Bearer k3y"}) as ws:
        assert ws.receive_json()["session_id"] == session_id


def test_a_failing_model_gives_an_error_event_and_keeps_the_user_turn(
    client_factory: Callable[..., TestClient],
) -> None:
    llm = FakeLLM()
    client = client_factory(fake_engines(llm=llm))
    llm.fail_with = RuntimeError("out of memory")
    with client.websocket_connect("/ws/voice") as ws:
        session_id = ws.receive_json()["session_id"]
        speak(ws)
        got = receive_until(ws, "turn_end")
        assert got.one("error")["code"] == "model_error"
        assert got.one("turn_end")["outcome"] == "failed"
        llm.fail_with = None
        second = one_turn(ws)  # the connection survives
    assert second.one("response")["text"]
    turns = client.get(f"/api/sessions/{session_id}/history").json()["turns"]
    assert [(t["role"], t["outcome"]) for t in turns] == [
        ("user", None), ("assistant", "failed"), ("user", None), ("assistant", "completed")
    ]


def test_one_clients_error_does_not_disturb_another(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice") as bad, client.websocket_connect("/ws/voice") as good:
        bad.receive_json()
        good.receive_json()
        bad.send_text("{{{")
        assert bad.receive_json()["code"] == "invalid_json"
        got = one_turn(good)
    assert got.one("response")["text"]


def test_prometheus_metrics_count_turns_errors_and_latency(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        ws.send_text("not json")
        ws.receive_json()
        one_turn(ws)
    body = client.get("/metrics").text
    assert 'claritymentor_turns_total{channel="voice",outcome="completed"} 1.0' in body
    assert 'claritymentor_errors_total{code="invalid_json"} 1.0' in body
    assert 'claritymentor_stage_ms_count{stage="voice_to_voice"} 1.0' in body
    assert "claritymentor_ws_connections 0.0" in body


def test_a_model_that_fails_to_load_stops_startup_with_the_config_key(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from backend.core.exceptions import ModelLoadError
    from backend.main import create_app
    from tests.conftest import make_settings

    def broken_loader(_settings):  # type: ignore[no-untyped-def]
        raise ModelLoadError("Whisper tiny.en", "stt.model", FileNotFoundError("model.bin"))

    with pytest.raises(ModelLoadError), TestClient(create_app(make_settings(tmp_path), engine_loader=broken_loader)):
        pass
    err = capsys.readouterr().err
    assert "could not load Whisper tiny.en (config key `stt.model`)" in err


def test_several_clients_at_once_each_get_their_own_answer(client: TestClient) -> None:
    from contextlib import ExitStack

    with ExitStack() as stack:
        sockets = [stack.enter_context(client.websocket_connect("/ws/voice")) for _ in range(6)]
        sessions = [ws.receive_json()["session_id"] for ws in sockets]
        for ws in sockets:  # everyone speaks before anyone is answered
            speak(ws)
        results = [receive_until(ws, "turn_end") for ws in sockets]
    assert len(set(sessions)) == 6
    assert all(r.one("response")["text"] and r.audio for r in results)
    for session_id in sessions:
        assert len(client.get(f"/api/sessions/{session_id}/history").json()["turns"]) == 2


def test_crisis_words_get_the_safety_reply_not_the_llm(client_factory: Callable[..., TestClient]) -> None:
    engines = fake_engines(stt=FakeSTT("honestly i dont want to be here anymore, everyone would be better off"))
    client = client_factory(engines)
    prompts_before = len(engines.llm.prompts)  # type: ignore[attr-defined]
    with client.websocket_connect("/ws/voice") as ws:
        session_id = ws.receive_json()["session_id"]
        got = one_turn(ws)
    assert got.one("safety")["category"] == "suicidal_ideation"
    assert got.order.index("safety") < got.order.index("response")
    assert "988" in got.one("response")["text"] and got.audio  # spoken too
    assert len(engines.llm.prompts) == prompts_before  # type: ignore[attr-defined]
    turns = client.get(f"/api/sessions/{session_id}/history").json()["turns"]
    assert [t["safety"] for t in turns] == [True, True]


def test_partial_transcripts_arrive_while_the_user_speaks(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        speak(ws, seconds=3.0)
        got = receive_until(ws, "turn_end")
    partials = got.of("partial_transcript")
    assert partials and all(p["text"] for p in partials)
    assert got.order.index("partial_transcript") < got.order.index("transcript")


def test_a_missing_event_fails_the_test_quickly_instead_of_hanging(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.ws_helpers as helpers

    monkeypatch.setattr(helpers, "RECEIVE_TIMEOUT_S", 0.3)
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        with pytest.raises(AssertionError, match="nothing arrived"):
            receive_until(ws, "turn_end")  # no audio was sent: no turn will ever end
