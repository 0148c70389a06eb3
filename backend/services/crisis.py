"""The crisis net around every turn: the decision (rules OR the learned classifier, with the conversation so far),
the reply for each category (worded in ``configs/safety/resources.yaml``), and the guard on what the mentor says.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from backend.config import REPO_ROOT
from backend.services.safety import CrisisDetector

RESOURCES_FILE = REPO_ROOT / "configs" / "safety" / "resources.yaml"
# The conversation view (earlier turns + this one) only counts when this message alone carries some risk, so one
# crisis turn does not turn every later "thanks, that helps" into a crisis.
CONVERSATION_MIN_SHARE = 0.3


@dataclass(frozen=True, slots=True)
class CategoryWording:
    opening: str
    resources: list[dict[str, str]]
    advice: str | None = None


@dataclass(frozen=True, slots=True)
class LocaleWording:
    emergency: str
    closing: str
    categories: dict[str, CategoryWording] = field(default_factory=dict)

    def reply(self, category: str) -> str:
        wording = self.categories.get(category) or self.categories["suicidal_ideation"]
        listing = "; ".join(f"{r['name']}: {r['contact']}" for r in wording.resources)
        parts = [wording.opening]
        if listing:
            parts.append(f"Please reach out right now to {listing}.")
        parts.append(wording.advice or f"If you are in immediate danger, please {self.emergency} now.")
        parts.append(self.closing)
        return " ".join(parts)


def load_wording(locale: str, path: Path = RESOURCES_FILE) -> LocaleWording:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    if locale not in data:
        raise ValueError(f"{path} has no locale {locale!r} (known: {', '.join(sorted(data))})")
    entry = data[locale]
    categories = {
        name: CategoryWording(c["opening"], list(c.get("resources", [])), c.get("advice"))
        for name, c in entry["categories"].items()
    }
    return LocaleWording(entry["emergency"], entry["closing"], categories)


@dataclass(frozen=True, slots=True)
class CrisisDecision:
    category: str | None
    source: str | None  # "rules: <rule>", "classifier:<view> p=0.93" (logged)


def decide(detector: CrisisDetector, classifier: Any | None, text: str, earlier: list[str]) -> CrisisDecision:
    """Rules OR classifier. Blocking (the classifier runs an encoder): call it off the event loop."""
    verdict = detector.check(text)
    if verdict.is_crisis:
        # Only the rule's name: the matched words are the user's, and logs never hold what was said.
        return CrisisDecision(verdict.category, f"rules: {(verdict.matched or '').partition(':')[0]}")
    if classifier is None:
        return CrisisDecision(None, None)
    alone = classifier.score(text)
    if alone.is_crisis:
        return CrisisDecision(alone.category, f"classifier:{alone.view} p={alone.probability:.2f}")
    if earlier and alone.probability >= CONVERSATION_MIN_SHARE * classifier.threshold:
        context = classifier.score(text, earlier)
        if context.is_crisis:
            return CrisisDecision(context.category, f"classifier:{context.view} p={context.probability:.2f}")
    return CrisisDecision(None, None)


# ---- the guard on the mentor's own words ---------------------------------------------------------------------
_GUARD_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile(pattern, re.IGNORECASE))
    for code, pattern in (
        ("farewell", r"\b(goodbye|farewell|final|last)\s+(note|letter|message|words)\b"),
        ("farewell", r"\bsay(ing)?\s+(your\s+)?goodbyes?\b"),
        ("method", r"\b(overdose|noose|hang(ing)? yourself|jump(ing)? off|slit|lethal|end (it|your life))\b"),
        ("dose", r"\b\d+\s*(mg|milligrams?|pills|tablets|capsules)\b|\bhow many (pills|tablets)\b"),
        ("secrecy", r"\b(don'?t|do not|never) tell (anyone|anybody|your (parents|doctor|family|friends))\b"),
        ("secrecy", r"\bkeep (it|this) (a )?secret\b"),
        (
            "confront_abuser",
            r"\b(confront|stand up to|fight back against)\s+(him|her|them|your "
            r"(partner|abuser|husband|wife|boyfriend|girlfriend|dad|father|mum|mom|stepdad))\b",
        ),
        ("harm", r"\b(hurt|harm|cut|starve|punish)\s+yourself\b"),
        ("harm", r"\bskip (meals|eating)\b|\bstop eating\b"),
    )
)


def guard_sentence(sentence: str) -> str | None:
    """The code of the first rule a generated sentence breaks, or None when it may be spoken."""
    for code, pattern in _GUARD_RULES:
        if pattern.search(sentence):
            return code
    return None


def guard_text(text: str, on_flag: Callable[[str], None] | None = None) -> str:
    """A whole reply, sentence by sentence: a flagged sentence is replaced and everything after it dropped."""
    kept: list[str] = []
    for sentence in re.findall(r"[^.!?]+[.!?]*", text):
        code = guard_sentence(sentence)
        if code is not None:
            if on_flag is not None:
                on_flag(code)
            kept.append(SAFE_REPLACEMENT)
            break
        kept.append(sentence.strip())
    return " ".join(s for s in kept if s)


SAFE_REPLACEMENT = (
    "I want to make sure you're safe and supported. "
    "Would you be willing to talk to someone you trust, or a crisis line, about how you're feeling right now?"
)
CHECK_IN_NOTE = (
    "Earlier in this conversation the user said they were in crisis. Stay gentle, keep them company, check how "
    "safe they feel now, and remind them that the support you mentioned is there."
)
