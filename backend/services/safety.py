"""Deterministic, rule-based crisis detection for user utterances.

The rules live in ``configs/safety/rules.en.yaml`` (patterns, flags, and a positive and a negative example
each); this module normalises the text, loads and applies them. They are meant for the unmistakable cases: the
learned classifier (``backend/engines/crisis_head.py``) catches indirect wording, and the decision is rules OR
classifier (``backend/services/crisis.py``).

The detector is deliberately simple and auditable: regular expressions applied to a
normalised form of the text (lower case, no apostrophes, no punctuation other than clause marks,
fillers and hedging adverbs removed, common contractions canonicalised). It is built for
speech-recognition output, so "dont", "don't" and "do not" all read the same.

Design rules:

* Patterns are specific ("kill myself", "want to die", "threatening me with a knife") rather than
  keyword based, so idioms such as "this deadline is killing me" never match in the first place.
  Idioms that do share a crisis phrase ("killing myself trying to finish this project",
  "burning myself out") are excluded by tight lookaheads on that single match only; every match in
  the text is examined, so a crisis phrase elsewhere in the same utterance still wins.
* Negation about the self ("I would never hurt myself", "I'm not suicidal") suppresses a match only
  when the negator governs the phrase, i.e. only auxiliaries and similar words lie between them
  ("I'm not sure I want to live anymore" and "I can't stop thinking about killing myself" still fire).
* When several categories match, the most urgent wins: immediate_danger, then suicidal_ideation,
  then self_harm.

False positives are cheap here (the mentor answers kindly with resources); false negatives are not,
so ambiguous wordings lean towards firing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

__all__ = [
    "CATEGORIES",
    "CrisisDetector",
    "SafetyVerdict",
]

IMMEDIATE_DANGER: Final = "immediate_danger"
SUICIDAL_IDEATION: Final = "suicidal_ideation"
SELF_HARM: Final = "self_harm"
#: Categories in priority order (most urgent first).
CATEGORIES: Final[tuple[str, ...]] = (IMMEDIATE_DANGER, SUICIDAL_IDEATION, SELF_HARM)


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    is_crisis: bool
    category: str | None  # "suicidal_ideation" | "self_harm" | "immediate_danger" | None
    matched: str | None  # the rule and phrase that fired, for logs


_NO_CRISIS: Final = SafetyVerdict(is_crisis=False, category=None, matched=None)

# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------

_APOSTROPHES: Final = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_HYPHENS: Final = re.compile(r"[-\u2010-\u2015_/]+")
_CLAUSE_MARKS: Final = re.compile(r"[.!?;:,()\[\]{}\"\u2026]+")
_OTHER_CHARS: Final = re.compile(r"[^a-z0-9| ]+")
_SPACES: Final = re.compile(r"\s+")
_PIPES: Final = re.compile(r"\|(?: ?\|)+")
# Fillers and hedging adverbs carry no meaning for detection and only get in the way of patterns.
_FILLERS: Final = re.compile(
    r"\b(?:u+m+|u+h+m*|e+r+m*|a+h+|h+m+|m+h*m+|you know|i mean|kind of|kinda|sort of|sorta|pretty much"
    r"|just|really|honestly|literally|actually|basically|seriously|totally|truly|even|like i said)\b"
)
_STUTTER: Final = re.compile(r"\b(\w+)(?: \1\b)+")
_CANONICAL: Final[dict[str, str]] = {
    "wanna": "want to",
    "gonna": "going to",
    "gotta": "got to",
    "tryna": "trying to",
    "cannot": "cant",
    "can not": "cant",
    "do not": "dont",
    "does not": "doesnt",
    "did not": "didnt",
    "will not": "wont",
    "would not": "wouldnt",
    "could not": "couldnt",
    "should not": "shouldnt",
    "is not": "isnt",
    "are not": "arent",
    "was not": "wasnt",
    "were not": "werent",
    "have not": "havent",
    "has not": "hasnt",
    "had not": "hadnt",
    "i am": "im",
    "i have": "ive",
    "i would": "id",
    "i had": "id",
    "i will": "ill",
    "he will": "hell",
    "she will": "shell",
    "they will": "theyll",
    "he would": "hed",
    "she would": "shed",
    "he is": "hes",
    "she is": "shes",
    "they are": "theyre",
    "it is": "its",
    "there is": "theres",
    "what is": "whats",
    "my self": "myself",
    "kms": "kill myself",
    "unalive": "kill",
    "unaliving": "killing",
}
_CANONICAL_RE: Final = re.compile(
    r"\b(?:" + "|".join(sorted((re.escape(k) for k in _CANONICAL), key=len, reverse=True)) + r")\b"
)


def _normalize(text: str) -> str:
    t = text.lower().translate(_APOSTROPHES).replace("'", "")
    t = _HYPHENS.sub(" ", t)
    t = _CLAUSE_MARKS.sub(" | ", t)
    t = _OTHER_CHARS.sub(" ", t)
    t = _SPACES.sub(" ", t)
    t = _FILLERS.sub(" ", t)
    t = _SPACES.sub(" ", t)
    t = _STUTTER.sub(r"\1", t)
    t = _CANONICAL_RE.sub(lambda m: _CANONICAL[m.group(0)], t)
    t = _PIPES.sub("|", t)
    return t.strip(" |")


# --------------------------------------------------------------------------------------------------
# Guards
# --------------------------------------------------------------------------------------------------

# A negator followed only by auxiliary-like words up to the start of the match.
_NEGATORS: Final = (
    r"not|never|dont|didnt|doesnt|wont|wouldnt|isnt|arent|aint|havent|hasnt|hadnt|shouldnt|nor"
    r"|no intention of|no intention to|no plans? (?:of|to)|no desire to|no way|no urge to"
)
_GAP_WORDS: Final = (
    r"ever|i|im|id|ill|ive|be|been|am|going|to|want|wanting|wanted|do|doing|anything|something|try"
    r"|trying|plan|planning|intend|intending|on|feel|feeling|like|would|will|could|should|think|thinking"
    r"|about|of|consider|considering|again|that|so|ready|got|have|having|had|has|need|needs"
)
_NEGATED: Final = re.compile(rf"(?:^|\s)(?:{_NEGATORS})(?:\s+(?:{_GAP_WORDS}))*\s*$")
_ACCIDENT: Final = re.compile(r"\b(?:by accident|accidentally|by mistake|unintentionally)\b")
_FIRST_PERSON: Final = frozenset({"i", "im", "ive", "id", "ill", "me", "myself", "we", "weve"})
_THIRD_PERSON: Final = frozenset(
    {
        "he", "she", "they", "hes", "shes", "theyre", "theyve", "his", "her", "their", "him", "them",
        "friend", "friends", "cousin", "brother", "sister", "mom", "mum", "dad", "mother", "father",
        "son", "daughter", "uncle", "aunt", "grandma", "grandpa", "classmate", "coworker", "colleague",
        "neighbor", "neighbour", "student", "character", "someone", "somebody", "guy", "girl", "man",
        "woman", "people", "kid", "boyfriend", "girlfriend", "husband", "wife", "partner", "roommate",
    }
)  # fmt: skip


# "I'm so embarrassed I want to die": hyperbole, for the want-to-die family of rules only.
_HYPERBOLE_PREFIX: Final = re.compile(
    r"\b(?:embarrass\w*|mortified|cringe\w*|awkward|humiliat\w*)(?: (?:i|im|that|and|so|it|was)){0,3} $"
)
_HYPERBOLE_GUARDED: Final = frozenset({"want_to_die"})


def _third_person_subject(prefix: str) -> bool:
    """True when the nearest subject-like word before the match refers to someone else."""
    for word in reversed(prefix.split()[-5:]):
        if word == "|":
            return False
        if word in _FIRST_PERSON:
            return False
        if word in _THIRD_PERSON:
            return True
    return False


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    category: str
    name: str
    regex: re.Pattern[str]
    negatable: bool = True  # suppress when a negator governs the match
    accident_guard: bool = False  # suppress when the utterance says it was an accident
    third_person_veto: bool = False  # suppress when the subject is clearly someone else


RULES_FILE: Final = Path(__file__).resolve().parents[2] / "configs" / "safety" / "rules.en.yaml"
_MACRO: Final = re.compile(r"\$\{(\w+)\}")


def load_rules(path: Path = RULES_FILE) -> tuple[_Rule, ...]:
    """The rules from their data file: ``${NAME}`` macros expanded, patterns compiled, in file order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    macros: dict[str, str] = data["macros"]

    def expand(pattern: str) -> str:
        return _MACRO.sub(lambda m: macros[m.group(1)], pattern)

    rules = []
    for spec in data["rules"]:
        if spec["category"] not in CATEGORIES:
            raise ValueError(f"{path}: rule {spec['name']!r} has unknown category {spec['category']!r}")
        rules.append(
            _Rule(
                spec["category"],
                spec["name"],
                re.compile(expand(spec["pattern"])),
                bool(spec.get("negatable", True)),
                bool(spec.get("accident_guard", False)),
                bool(spec.get("third_person_veto", False)),
            )
        )
    return tuple(rules)


_BUILTIN_RULES: Final = load_rules()


# --------------------------------------------------------------------------------------------------
# Detector
# --------------------------------------------------------------------------------------------------


class CrisisDetector:
    """Rule-based crisis detector. Thread-safe and stateless after construction.

    ``extra_patterns`` maps a category ("suicidal_ideation", "self_harm" or "immediate_danger") to
    additional regular expressions. They are matched (case-insensitively) against the normalised
    text: lower case, apostrophes removed ("dont", "im"), punctuation replaced by ``|``, fillers
    removed; negation is honoured as for built-in rules.
    """

    __slots__ = ("_rules",)

    def __init__(self, extra_patterns: dict[str, list[str]] | None = None) -> None:
        rules: list[_Rule] = list(_BUILTIN_RULES)
        for category, patterns in (extra_patterns or {}).items():
            if category not in CATEGORIES:
                raise ValueError(f"unknown crisis category {category!r}; expected one of {CATEGORIES}")
            for index, pattern in enumerate(patterns):
                try:
                    compiled = re.compile(pattern, re.IGNORECASE)
                except re.error as exc:
                    raise ValueError(f"invalid extra pattern for {category!r}: {pattern!r}: {exc}") from exc
                rules.append(_Rule(category, f"extra_{category}_{index}", compiled))
        rank = {category: i for i, category in enumerate(CATEGORIES)}
        rules.sort(key=lambda rule: rank[rule.category])  # stable: keeps order within a category
        self._rules: tuple[_Rule, ...] = tuple(rules)

    def check(self, text: str) -> SafetyVerdict:
        """Classify one utterance. Deterministic; empty or whitespace-only text is never a crisis."""
        if not text or text.isspace():
            return _NO_CRISIS
        norm = _normalize(text)
        if not norm:
            return _NO_CRISIS
        accidental: bool | None = None
        for rule in self._rules:
            for match in rule.regex.finditer(norm):
                prefix = norm[max(0, match.start() - 80) : match.start()]
                if rule.negatable and _NEGATED.search(prefix):
                    continue
                if rule.third_person_veto and _third_person_subject(prefix):
                    continue
                if rule.name in _HYPERBOLE_GUARDED and _HYPERBOLE_PREFIX.search(prefix):
                    continue
                if rule.accident_guard:
                    if accidental is None:
                        accidental = _ACCIDENT.search(norm) is not None
                    if accidental:
                        continue
                fired = f"{rule.name}: {match.group(0)}"
                return SafetyVerdict(is_crisis=True, category=rule.category, matched=fired)
        return _NO_CRISIS
