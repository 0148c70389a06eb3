"""Endpointing, fusion, prompting and config on fixed inputs."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from backend.config import EMOTIONS, Settings, VADSettings
from backend.engines.prosody import ProsodyEmotion
from backend.engines.protocols import ProsodyReading
from backend.models.emotion import EmotionData
from backend.services.endpointing import Endpointer, adaptive_end_silence_ms
from backend.services.fusion import fuse
from backend.services.prompting import INTERRUPTED_NOTE, PERSONA, HistoryTurn, build_messages
from backend.services.reply_stream import ActiveReply, SpokenSegment, split_sentences
from tests.fakes import FakeVAD, silence, tone


def feed_all(ep: Endpointer, *chunks: np.ndarray) -> list:  # type: ignore[type-arg]
    found = []
    for chunk in chunks:
        found += ep.feed(chunk).utterances
    return found


def test_endpointer_cuts_after_configured_silence_not_before() -> None:
    settings = VADSettings(end_silence_ms=600, adaptive=False)
    ep = Endpointer(settings, FakeVAD().new_stream())
    assert feed_all(ep, tone(1.0), silence(0.5)) == []  # 500 ms pause: still the same turn
    [utt] = feed_all(ep, tone(0.5), silence(0.7))
    assert utt.audio.size / 16000 == pytest.approx(2.0 + 0.2 + 0.1, abs=0.15)  # speech + pause + kept tail


def test_short_blips_do_not_start_a_turn() -> None:
    ep = Endpointer(VADSettings(min_speech_ms=200), FakeVAD().new_stream())
    assert feed_all(ep, tone(0.1), silence(1.5)) == []
    assert ep.flush() is None


def test_preroll_keeps_the_start_of_the_word() -> None:
    ep = Endpointer(VADSettings(pre_roll_ms=300, adaptive=False), FakeVAD().new_stream())
    [utt] = feed_all(ep, silence(1.0), tone(0.5), silence(0.8))
    assert utt.audio.size / 16000 >= 0.5 + 0.25


@pytest.mark.parametrize(
    ("text", "wps", "expect"),
    [
        ("What should I do about my exam?", 2.5, "shorter"),
        ("I was thinking that maybe I should and", 2.5, "longer"),
        ("I am going to", 2.5, "longer"),
        ("Today was fine.", 1.2, "longer"),
        ("Can you help me decide between?", 2.5, "longer"),  # a dangling word beats Whisper's "?"
        ("It started when my friend", 2.5, "longer"),  # no final punctuation: mid-thought
    ],
)
def test_adaptive_end_silence(text: str, wps: float, expect: str) -> None:
    s = VADSettings()
    wait = adaptive_end_silence_ms(s, text, wps)
    assert s.min_end_silence_ms <= wait <= s.max_end_silence_ms
    assert (wait < s.end_silence_ms) if expect == "shorter" else (wait > s.end_silence_ms)


def test_fusion_flags_cheerful_words_in_a_flat_voice() -> None:
    joy = {label: (0.9 if label == "joy" else 0.1 / 6) for label in EMOTIONS}
    flat = ProsodyReading(arousal=-0.7, valence=-0.6, confidence=0.5)
    data = fuse(joy, flat, speech_weight=0.35)
    assert data.incongruent is True
    assert data.text is not None and data.text.primary_emotion == "joy"
    assert data.speech is not None and data.speech.arousal == -0.7
    assert data.scores["sadness"] > joy["sadness"]  # the voice moved the fused scores
    assert sum(data.scores.values()) == pytest.approx(1.0, abs=1e-3)


def test_fusion_trusts_text_when_voice_is_unsure() -> None:
    anger = {label: (0.8 if label == "anger" else 0.2 / 6) for label in EMOTIONS}
    unsure = ProsodyReading(arousal=-0.8, valence=0.5, confidence=0.05)
    data = fuse(anger, unsure, speech_weight=0.35)
    assert data.primary_emotion == "anger" and data.incongruent is False
    assert fuse(anger, None, speech_weight=0.35).speech is None


def test_prosody_confidence_is_low_and_grows_with_speech() -> None:
    engine = ProsodyEmotion()
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 3) / 16000
    voiced = (0.3 * np.sin(2 * np.pi * (120 + 30 * np.sin(2 * np.pi * 0.5 * t)) * t)).astype(np.float32)
    short, long = engine.analyze(voiced[:8000], 16000, "hi there"), engine.analyze(voiced, 16000, "one two three four")
    assert 0 < short.confidence < long.confidence <= 0.6
    assert engine.analyze((rng.normal(0, 1e-4, 16000)).astype(np.float32), 16000, "").confidence == 0.0


def test_prompt_has_persona_emotion_and_budgeted_history() -> None:
    history = [
        HistoryTurn("user", f"old message {i} " * 5, EmotionData(primary_emotion="sadness", confidence=0.6))
        if i % 2 == 0
        else HistoryTurn("assistant", f"reply {i}", interrupted=i == 3)
        for i in range(10)
    ]
    msgs = build_messages(
        history,
        "What now?",
        EmotionData(primary_emotion="fear", confidence=0.82),
        count_tokens=lambda s: len(s.split()),
        history_token_budget=60,
    )
    assert msgs[0].content == PERSONA and msgs[-1].content == "[user sounds: fear, 0.82] What now?"
    kept = msgs[1:-1]
    assert kept and kept[0].role == "user" and sum(len(m.content.split()) for m in kept) <= 60
    assert kept[-1].content == "reply 9"  # the newest history survives the budget
    full = build_messages(history, "x", None, count_tokens=lambda s: 1, history_token_budget=10_000)
    assert any(m.content.endswith(INTERRUPTED_NOTE) for m in full)


def test_sentence_splitting_waits_for_the_next_word() -> None:
    done, rest = split_sentences("That sounds hard. Try a walk")
    assert done == ["That sounds hard."] and rest == "Try a walk"
    assert split_sentences("Are you sure?")[0] == []  # might continue ("?!" / quote): wait for whitespace
    # The first chunk of an answer may end at a comma, once it has four words: audio starts sooner.
    assert split_sentences("That is a lot to carry, and you", first=True) == (["That is a lot to carry,"], "and you")
    assert split_sentences("That is a lot to carry, and you") == ([], "That is a lot to carry, and you")
    assert split_sentences("Oh no, that", first=True) == ([], "Oh no, that")


def test_heard_text_counts_only_played_words() -> None:
    reply = ActiveReply(
        turn_id="t", segments=[SpokenSegment("One two three.", 0, 300), SpokenSegment("Four five.", 300, 200)]
    )
    assert reply.heard_text(0) == ""
    assert reply.heard_text(200) == "One two"
    assert reply.heard_text(400) == "One two three. Four"


def test_config_rejects_bad_values_at_startup() -> None:
    with pytest.raises(ValidationError, match="neg_threshold"):
        Settings(vad={"threshold": 0.3, "neg_threshold": 0.4})
    with pytest.raises(ValidationError, match="locale"):
        Settings(safety={"locale": "xx-XX"})
    with pytest.raises(ValidationError):
        Settings(stt={"engine": "nonexistent"})


def test_database_url_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/cm")
    monkeypatch.setenv("CLARITY_LLM__MAX_RESPONSE_TOKENS", "42")
    settings = Settings()
    assert settings.sqlalchemy_url == "postgresql+asyncpg://u@db:5432/cm"
    assert settings.llm.max_response_tokens == 42
