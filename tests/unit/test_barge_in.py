"""Barge-in and streaming on fake engines: no frame of a cancelled answer after `interrupted`, history keeps
only what was heard, and the next reply knows it was cut."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from backend.services.prompting import INTERRUPTED_NOTE
from tests.fakes import FakeLLM, fake_engines, pcm_bytes, silence, tone
from tests.ws_helpers import Received, one_turn, receive_audio_frames, receive_until, speak

LONG_REPLY = (
    "That sounds really stressful. Let's slow it down together and pick one small thing for tonight. "
    "Maybe write the three topics you fear most on a card and look at them once before bed. "
    "Then close the books, breathe slowly and get some proper sleep, because rest helps memory. "
    "Tomorrow morning, read the card again and remind yourself how much you already prepared."
)


def slow_client(client_factory: Callable[..., TestClient], delay: float = 0.03) -> tuple[TestClient, FakeLLM]:
    llm = FakeLLM(LONG_REPLY, token_delay_s=delay)
    return client_factory(fake_engines(llm=llm)), llm


def test_interrupt_message_stops_the_answer_and_no_audio_follows(client_factory: Callable[..., TestClient]) -> None:
    client, llm = slow_client(client_factory)
    with client.websocket_connect("/ws/voice") as ws:
        session_id = ws.receive_json()["session_id"]
        speak(ws)
        got = Received()
        receive_audio_frames(ws, got)
        ws.send_json({"type": "interrupt"})
        receive_until(ws, "turn_end", got)
    cut = got.order.index("interrupted")
    assert "<audio>" not in got.order[cut:], got.order[cut:]
    assert "audio_end" not in got.order[cut:]
    assert got.one("interrupted")["reason"] == "client"
    assert got.one("turn_end")["interrupted"] is True
    assert llm.cancelled.wait(2.0)  # generation itself stopped, not just the audio
    heard = got.one("interrupted")["heard_text"]
    assert len(heard) < len(LONG_REPLY) and LONG_REPLY.startswith(heard)
    last = client.get(f"/api/sessions/{session_id}/history").json()["turns"][-1]
    assert last == {**last, "role": "assistant", "content": heard, "interrupted": True}


def test_heard_text_follows_the_clients_playback_acks(client_factory: Callable[..., TestClient]) -> None:
    client, _llm = slow_client(client_factory, delay=0.05)
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        speak(ws)
        got = Received()
        receive_audio_frames(ws, got, frames=3)
        first_sentence_ms = 4 * 60  # FakeTTS: 60 ms per word, "That sounds really stressful."
        ws.send_json({"type": "playback", "played_ms": first_sentence_ms})
        ws.send_json({"type": "interrupt"})
        receive_until(ws, "turn_end", got)
    assert got.one("interrupted")["heard_text"] == "That sounds really stressful."


def test_user_speech_barges_in_and_becomes_the_next_turn(client_factory: Callable[..., TestClient]) -> None:
    client, llm = slow_client(client_factory)
    with client.websocket_connect("/ws/voice") as ws:
        session_id = ws.receive_json()["session_id"]
        speak(ws)
        got = Received()
        receive_audio_frames(ws, got)
        for _ in range(5):  # 500 ms of speech over the answer
            ws.send_bytes(pcm_bytes(tone(0.1)))
        receive_until(ws, "interrupted", got)
        assert got.one("interrupted")["reason"] == "speech"
        for _ in range(10):
            ws.send_bytes(pcm_bytes(silence(0.1)))
        receive_until(ws, "turn_end", got)  # end of the interrupted turn
        llm.token_delay_s = 0.0
        second = receive_until(ws, "turn_end")
    cut = got.order.index("interrupted")
    assert "<audio>" not in got.order[cut:]
    assert second.one("transcript")["text"]
    # The next prompt carries the cut-off answer, marked as interrupted.
    assert any(m.role == "assistant" and m.content.endswith(INTERRUPTED_NOTE) for m in llm.prompts[-1])
    turns = client.get(f"/api/sessions/{session_id}/history").json()["turns"]
    assert [t["interrupted"] for t in turns] == [False, True, False, False]


def test_a_cough_during_the_answer_does_not_interrupt(client_factory: Callable[..., TestClient]) -> None:
    client, _llm = slow_client(client_factory, delay=0.005)
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        speak(ws)
        got = Received()
        receive_audio_frames(ws, got)
        ws.send_bytes(pcm_bytes(tone(0.15)))  # a cough: shorter than barge_in_min_ms
        ws.send_bytes(pcm_bytes(silence(0.5)))
        receive_until(ws, "turn_end", got)
    assert "interrupted" not in got.order
    assert got.one("response")["text"] == LONG_REPLY


def test_deltas_and_sentence_audio_arrive_before_the_answer_is_finished(
    client_factory: Callable[..., TestClient],
) -> None:
    client, _llm = slow_client(client_factory, delay=0.01)
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        got = one_turn(ws)
    first_audio, final = got.order.index("<audio>"), got.order.index("response")
    assert got.order.index("response_delta") < first_audio < final
    assert "".join(d["text"] for d in got.of("response_delta")) == LONG_REPLY
    metrics = got.one("metrics")
    assert metrics["tokens"] == len(LONG_REPLY.split(" "))
    for key in (
        "stt_ms",
        "emotion_ms",
        "llm_first_token_ms",
        "llm_total_ms",
        "tts_first_audio_ms",
        "voice_to_voice_ms",
    ):
        assert metrics[key] is not None and metrics[key] >= 0, key
    assert metrics["llm_first_token_ms"] < metrics["llm_total_ms"]
    assert metrics["audio_seconds"] > 1.0


def test_twenty_turns_faster_than_real_time_on_one_connection(client: TestClient) -> None:
    with client.websocket_connect("/ws/voice") as ws:
        session_id = ws.receive_json()["session_id"]
        ends = [one_turn(ws).one("turn_end") for _ in range(20)]
    assert len({e["turn_id"] for e in ends}) == 20
    history = client.get(f"/api/sessions/{session_id}/history").json()
    assert len(history["turns"]) == 40 and not any(t["interrupted"] for t in history["turns"])
