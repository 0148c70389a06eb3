"""The crisis net on fakes: rules OR classifier, the conversation view, per-category wording from the data file,
the guard on generated sentences (REST and the voice socket), and the check-in after a crisis turn."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from backend.engines.crisis_head import CRISIS_LABELS, NONE, CrisisScore, sentences
from backend.services.crisis import (
    CHECK_IN_NOTE,
    RESOURCES_FILE,
    SAFE_REPLACEMENT,
    decide,
    guard_sentence,
    load_wording,
)
from backend.services.safety import CrisisDetector
from tests.fakes import FakeLLM, FakeSTT, fake_engines
from tests.ws_helpers import one_turn


class FakeCrisis:
    """Flags a message when it contains a key phrase; the conversation view sees earlier messages too."""

    threshold = 0.5

    def __init__(self, phrases: dict[str, str]) -> None:
        self.phrases = phrases
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def score(self, text: str, earlier: Sequence[str] = ()) -> CrisisScore:
        self.calls.append((text, tuple(earlier)))
        joined = " ".join([*earlier, text]).lower()
        for phrase, category in self.phrases.items():
            if phrase in text.lower():
                return CrisisScore(0.95, category, True, "message")
            if earlier and phrase in joined and "ready" in text.lower():
                return CrisisScore(0.8, category, True, "conversation")
        return CrisisScore(0.2 if "ready" in text.lower() else 0.01, "suicidal_ideation", False, "message")


def test_rules_or_classifier() -> None:
    detector = CrisisDetector()
    clf = FakeCrisis({"says it's our secret": "abuse_child"})
    assert decide(detector, clf, "I want to kill myself", []).source.startswith("rules")  # type: ignore[union-attr]
    by_model = decide(detector, clf, "he comes in my room at night and says it's our secret", [])
    assert by_model.category == "abuse_child" and by_model.source.startswith("classifier")  # type: ignore[union-attr]
    assert decide(detector, clf, "this commute is killing me", []).category is None
    assert decide(detector, None, "he says it's our secret", []).category is None  # rules alone miss it


def test_conversation_risk_makes_a_vague_message_a_crisis() -> None:
    clf = FakeCrisis({"affairs in order": "suicidal_ideation"})
    earlier = ["I've been putting my affairs in order this week."]
    assert decide(CrisisDetector(), clf, "I think I'm nearly ready.", earlier).category == "suicidal_ideation"
    assert decide(CrisisDetector(), clf, "I think I'm nearly ready.", []).category is None
    # An ordinary later message (no risk of its own) is not dragged in by the earlier turn.
    assert decide(CrisisDetector(), clf, "Thanks, that helps a lot.", earlier).category is None


def test_sentences_split_only_multi_sentence_messages() -> None:
    assert sentences("Just one thought here") == []
    assert sentences("Work was long. I took all my pills an hour ago. Anyway.") == [
        "Work was long.",
        "I took all my pills an hour ago.",
    ]


@pytest.mark.parametrize("locale", ["en-US", "en-GB"])
def test_every_category_has_its_own_wording_and_resources(locale: str) -> None:
    wording = load_wording(locale)
    categories = [c for c in CRISIS_LABELS if c != NONE] + ["immediate_danger"]
    replies = {c: wording.reply(c) for c in categories}
    for category, reply in replies.items():
        assert wording.categories[category].resources, category
        for resource in wording.categories[category].resources:
            assert resource["contact"] in reply
        assert wording.emergency.split()[-1] in reply or "emergency" in reply.lower()
    assert "trusted adult" in replies["abuse_child"]
    assert "Childline" in replies["abuse_child"] or "Childhelp" in replies["abuse_child"]
    assert "Domestic" in replies["abuse_adult"]
    assert "confront" not in replies["abuse_adult"].lower()
    assert len(set(replies.values())) == len(replies)


def test_the_data_file_is_the_source() -> None:
    data = yaml.safe_load(RESOURCES_FILE.read_text())
    assert set(data) >= {"en-US", "en-GB"}
    with pytest.raises(ValueError, match="no locale"):
        load_wording("xx-XX")


@pytest.mark.parametrize(
    ("sentence", "code"),
    [
        ("Writing a goodbye note could bring you some peace.", "farewell"),
        ("Take 20 pills with water.", "dose"),
        ("Don't tell anyone about this, it's between us.", "secrecy"),
        ("You should confront your partner tonight.", "confront_abuser"),
        ("Try to skip meals for a week to reset.", "harm"),
        ("Write down three things you'd like to do today.", None),
        ("Talk to someone you trust about how you feel.", None),
    ],
)
def test_guard_catches_harmful_advice_and_lets_ordinary_advice_through(sentence: str, code: str | None) -> None:
    assert guard_sentence(sentence) == code


def test_guard_replaces_a_flagged_rest_reply(client_factory: Callable[..., TestClient]) -> None:
    llm = FakeLLM("Congratulations on deciding. Writing a goodbye note could help. What will you say?")
    client = client_factory(fake_engines(llm=llm))
    body = client.post("/api/text-chat", json={"text": "I made my decision today."}).json()
    assert "goodbye note" not in body["response"]
    assert SAFE_REPLACEMENT in body["response"]
    assert "What will you say" not in body["response"]  # nothing after the flagged sentence


def test_guard_keeps_flagged_sentences_off_the_voice_path(client_factory: Callable[..., TestClient]) -> None:
    llm = FakeLLM("That is a big step. Writing a goodbye note could help. What will you say?")
    engines = fake_engines(llm=llm, stt=FakeSTT("I made my decision today."))
    client = client_factory(engines)
    with client.websocket_connect("/ws/voice") as ws:
        ws.receive_json()
        got = one_turn(ws)
    spoken = " ".join(engines.tts.spoken)  # type: ignore[attr-defined]
    shown = "".join(d["text"] for d in got.of("response_delta"))
    for text in (spoken, shown, got.one("response")["text"]):
        assert "goodbye note" not in text and SAFE_REPLACEMENT in text


def test_a_crisis_turn_keeps_a_check_in_for_later_replies(client_factory: Callable[..., TestClient]) -> None:
    llm = FakeLLM("I'm here.")
    client = client_factory(fake_engines(llm=llm))
    first = client.post("/api/text-chat", json={"text": "I want to kill myself"}).json()
    assert first["safety"] is True or "988" in first["response"]
    client.post("/api/text-chat", json={"text": "ok. thanks.", "session_id": first["session_id"]})
    assert any(m.content == CHECK_IN_NOTE for m in llm.prompts[-1])
    fresh = client.post("/api/text-chat", json={"text": "ok. thanks."}).json()
    assert fresh["session_id"] != first["session_id"]
    assert not any(m.content == CHECK_IN_NOTE for m in llm.prompts[-1])


def test_classifier_decides_over_rest(client_factory: Callable[..., TestClient]) -> None:
    engines = fake_engines()
    engines.crisis = FakeCrisis({"swallowed the whole bottle": "medical_emergency"})
    client = client_factory(engines)
    before = len(engines.llm.prompts)  # type: ignore[attr-defined]
    body = client.post("/api/text-chat", json={"text": "i swallowed the whole bottle an hour ago"}).json()
    assert "Poison" in body["response"] or "911" in body["response"]
    assert len(engines.llm.prompts) == before  # type: ignore[attr-defined]  # the LLM never saw it


def test_resources_file_path_is_in_configs() -> None:
    assert RESOURCES_FILE.parent == Path(__file__).resolve().parents[2] / "configs" / "safety"
