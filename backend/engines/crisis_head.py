"""The learned crisis classifier: MiniLM-L6 with its own LoRA adapters and a 9-way head (eight crisis categories
and "none"), trained by ``scripts/train_crisis_head.py`` into ``models/crisis-text`` in the emotion model's format.
A message is scored whole and sentence by sentence (one crisis sentence inside a long everyday message still
counts), and together with the user's previous turns (risk builds up over a conversation)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backend.config import EmotionSettings, resolve_model_ref

NONE = "none"
CRISIS_LABELS: tuple[str, ...] = (
    "suicidal_ideation",
    "self_harm",
    "medical_emergency",
    "abuse_adult",
    "abuse_child",
    "harm_to_others",
    "psychosis",
    "eating_disorder",
    NONE,
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


def sentences(text: str) -> list[str]:
    """The sentences of a message worth scoring alone (only when there are several)."""
    found = [s.strip() for s in _SENTENCE.findall(text) if len(s.split()) >= 2]
    return found if len(found) > 1 else []


@dataclass(frozen=True, slots=True)
class CrisisScore:
    probability: float  # P(any crisis category): the highest over the views scored
    category: str  # the most likely crisis category in that view (even when below threshold)
    is_crisis: bool
    view: str  # "message", "sentence" or "conversation"


class CrisisClassifier:
    name = "MiniLM-L6 + crisis LoRA + head"

    def __init__(self, head_path: str, encoder: str, threads: int = 1, threshold: float | None = None) -> None:
        from backend.engines.text_emotion import MiniLMEmotion

        folder = Path(resolve_model_ref(head_path))
        meta = json.loads((folder / "config.json").read_text())
        self._model = MiniLMEmotion(EmotionSettings(encoder=encoder, head_path=str(folder), device="cpu"), threads)
        if tuple(self._model.labels) != CRISIS_LABELS:
            raise ValueError(f"{folder}: labels {self._model.labels} are not the crisis labels {CRISIS_LABELS}")
        self.threshold = float(threshold if threshold is not None else meta["threshold"])

    def score(self, text: str, earlier: Sequence[str] = ()) -> CrisisScore:
        """Without ``earlier``: the message and its sentences. With ``earlier`` (the user's previous messages,
        oldest first): only the conversation view, the last three of them joined with this one."""
        if earlier:
            views = [("conversation", " ".join([*earlier[-3:], text]))]
        else:
            views = [("message", text), *(("sentence", s) for s in sentences(text))]
        rows = self._model.predict([v for _, v in views])
        best = max(range(len(rows)), key=lambda i: 1.0 - rows[i][NONE])
        row = rows[best]
        probability = 1.0 - row[NONE]
        category = max((c for c in CRISIS_LABELS if c != NONE), key=row.__getitem__)
        return CrisisScore(probability, category, probability >= self.threshold, views[best][0])
