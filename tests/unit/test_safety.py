"""Tests for the rule-based crisis detector (the unmistakable cases; the learned classifier is tested apart)."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from backend.services.safety import CATEGORIES, RULES_FILE, CrisisDetector, SafetyVerdict, _normalize, load_rules

CASES_PATH = Path(__file__).resolve().parent.parent / "data" / "safety_cases.jsonl"


def _load_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    with CASES_PATH.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                cases.append(json.loads(line))
    return cases


CASES = _load_cases()


@pytest.fixture(scope="module")
def detector() -> CrisisDetector:
    return CrisisDetector()


def test_case_file_is_large_and_balanced() -> None:
    crisis = [c for c in CASES if c["crisis"]]
    safe = [c for c in CASES if not c["crisis"]]
    assert len(crisis) >= 45
    assert len(safe) >= 45
    assert {c["category"] for c in crisis} == set(CATEGORIES)
    texts = [c["text"] for c in CASES]
    assert len(texts) == len(set(texts)), "duplicate cases"


@pytest.mark.parametrize("case", CASES, ids=[c["text"][:60] for c in CASES])
def test_cases(detector: CrisisDetector, case: dict[str, Any]) -> None:
    verdict = detector.check(case["text"])
    assert verdict.is_crisis is case["crisis"], verdict.matched
    if case["crisis"]:
        assert verdict.category == case["category"], verdict.matched
        assert verdict.matched
    else:
        assert verdict.category is None
        assert verdict.matched is None


@pytest.mark.parametrize("text", ["", " ", "   \n\t  ", "...", "um uh", "?!"])
def test_empty_or_blank_is_not_crisis(detector: CrisisDetector, text: str) -> None:
    assert detector.check(text) == SafetyVerdict(is_crisis=False, category=None, matched=None)


def test_deterministic_and_instance_independent(detector: CrisisDetector) -> None:
    other = CrisisDetector()
    for case in CASES:
        first = detector.check(case["text"])
        assert detector.check(case["text"]) == first
        assert other.check(case["text"]) == first


@pytest.mark.parametrize(
    "text",
    [
        "I WANT TO KILL MYSELF",
        "i want to kill myself.",
        "I\u2019m not sure I want to live anymore",
        "i   want   to   die",
        "uh um i i i want to die you know",
    ],
)
def test_case_punctuation_and_asr_robustness(detector: CrisisDetector, text: str) -> None:
    assert detector.check(text).is_crisis


def test_crisis_wins_over_idiom_in_same_utterance(detector: CrisisDetector) -> None:
    verdict = detector.check("my feet are killing me and i would never quit but i want to die")
    assert verdict.category == "suicidal_ideation"
    verdict = detector.check("i would never hurt myself but lately i keep hurting myself")
    assert verdict.category == "self_harm"


def test_most_urgent_category_wins(detector: CrisisDetector) -> None:
    verdict = detector.check("i've been cutting and i want to die and i took a whole bottle of pills")
    assert verdict.category == "immediate_danger"
    verdict = detector.check("i keep hurting myself and i want to die")
    assert verdict.category == "suicidal_ideation"


def test_extra_patterns() -> None:
    det = CrisisDetector(extra_patterns={"suicidal_ideation": [r"\bwant to vanish for good\b"]})
    verdict = det.check("I want to vanish for good")
    assert verdict.is_crisis
    assert verdict.category == "suicidal_ideation"
    assert verdict.matched is not None and verdict.matched.startswith("extra_suicidal_ideation_0")
    assert not det.check("i don't want to vanish for good").is_crisis  # negation still applies
    assert not CrisisDetector().check("I want to vanish for good").is_crisis


def test_extra_patterns_validation() -> None:
    with pytest.raises(ValueError, match="unknown crisis category"):
        CrisisDetector(extra_patterns={"sadness": ["x"]})
    with pytest.raises(ValueError, match="invalid extra pattern"):
        CrisisDetector(extra_patterns={"self_harm": ["("]})


RULES = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["rules"]


@pytest.mark.parametrize("index", range(len(RULES)), ids=[f"{i}-{r['name']}" for i, r in enumerate(RULES)])
def test_every_rule_in_the_data_file_fires_on_its_positives_and_not_its_negatives(index: int) -> None:
    spec, rule = RULES[index], load_rules()[index]
    assert spec["examples"]["positive"] and spec["examples"]["negative"], "each rule needs both kinds of example"
    for text in spec["examples"]["positive"]:
        assert rule.regex.search(_normalize(text)), f"{spec['name']} should match: {text}"
        assert CrisisDetector().check(text).is_crisis, text
    for text in spec["examples"]["negative"]:
        assert not CrisisDetector().check(text).is_crisis, f"{spec['name']} negative flagged: {text}"


def test_a_broken_rules_file_fails_loudly(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("macros: {}\nrules:\n- {category: nonsense, name: x, pattern: 'x'}\n")
    with pytest.raises(ValueError, match="unknown category"):
        load_rules(bad)
