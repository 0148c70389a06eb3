"""Turn taking: the pause's transcript becomes the final one when no speech followed it (one STT pass, not two),
a pause the speaker talks through is not reused, and the combined rules + LLM policy for the end-of-turn wait."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend.config import VADSettings
from backend.core.audio_utils import FloatAudio
from backend.engines.protocols import Transcription
from backend.services.endpointing import combined_end_silence_ms
from tests.fakes import FakeSTT, fake_engines, pcm_bytes, silence, tone
from tests.ws_helpers import receive_until


class ScoringLLM:
    """A fake LLM with the optional end-of-turn scorer, counting calls."""

    def __init__(self, inner: object, score: float) -> None:
        self._inner = inner
        self.score = score
        self.scored: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def sentence_end_probability(self, transcript: str) -> float:
        self.scored.append(transcript)
        return self.score


def test_pause_transcript_is_reused_as_the_final_one(client_factory: Callable[..., TestClient]) -> None:
    stt = FakeSTT("I feel really stressed about my exam tomorrow.")
    engines = fake_engines(stt=stt)
    engines.llm = ScoringLLM(engines.llm, 0.9)  # type: ignore[assignment]
    client = client_factory(engines)
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        calls_before = stt.calls  # the start-up warm-up call
        for _ in range(6):  # 0.6 s of speech (no periodic partial yet), then the pause begins
            ws.send_bytes(pcm_bytes(tone(0.1)))
        ws.send_bytes(pcm_bytes(silence(0.2)))
        got = receive_until(ws, "partial_transcript")  # the pause's transcript is ready...
        for _ in range(15):  # ...before the pause is long enough to end the turn
            ws.send_bytes(pcm_bytes(silence(0.1)))
        got = receive_until(ws, "turn_end", got)
    assert got.one("transcript")["text"] == "I feel really stressed about my exam tomorrow."
    assert got.one("metrics")["transcript_reused"] is True
    assert stt.calls - calls_before == 1  # the pause's transcript only: no second pass over the same audio
    assert set(engines.llm.scored) == {"I feel really stressed about my exam tomorrow."}  # type: ignore[attr-defined]


class CountingSTT(FakeSTT):
    """One word per 100 ms of loud audio, so a transcript shows how much of the speech it covered."""

    def transcribe(self, audio: FloatAudio) -> Transcription:
        self.calls += 1
        loud = int(np.sum(np.abs(audio) > 0.05) // 1600)
        return Transcription(" ".join(f"w{i}" for i in range(loud)), "en", audio.size / 16000)


def test_speech_after_the_pause_gets_a_fresh_transcript(client_factory: Callable[..., TestClient]) -> None:
    client = client_factory(fake_engines(stt=CountingSTT()))
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        for chunk in [*[tone(0.1)] * 8, *[silence(0.1)] * 3, *[tone(0.1)] * 8, *[silence(0.1)] * 15]:
            ws.send_bytes(pcm_bytes(chunk))
        got = receive_until(ws, "turn_end")
    words = got.one("transcript")["text"].split()
    assert len(words) >= 15  # both stretches of speech, not only the part before the pause


@pytest.mark.parametrize(
    ("text", "p_end", "expect"),
    [
        ("What should I do?", 0.6, "short"),  # rules and LLM agree: finished
        ("What should I do?", 0.1, "default"),  # they disagree: no early end
        ("I have two offers and", 0.001, "long"),  # dangling word, LLM agrees
        ("My manager ignored my idea in the meeting", 0.01, "long"),  # no rule fires; the LLM hears it unfinished
        ("I got the job", 0.5, "between"),
    ],
)
def test_combined_wait(text: str, p_end: float, expect: str) -> None:
    s = VADSettings()
    wait = combined_end_silence_ms(s, text, 2.5, p_end)
    assert s.min_end_silence_ms <= wait <= s.max_end_silence_ms
    if expect == "short":
        assert wait < s.end_silence_ms
    elif expect == "default":
        assert wait == s.end_silence_ms
    elif expect == "long":
        assert wait >= 1.5 * s.end_silence_ms
    else:
        assert s.end_silence_ms < wait < 1.4 * s.end_silence_ms
    assert combined_end_silence_ms(s, text, 2.5, None) == combined_end_silence_ms(
        VADSettings(), text, 2.5, None
    )  # no scorer: the rules alone
