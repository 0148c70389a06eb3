"""Late fusion of the text and voice emotion channels, weighted by each channel's confidence."""

from __future__ import annotations

import math

from backend.engines.protocols import ProsodyReading
from backend.models.emotion import ChannelEmotion, EmotionData, SpeechReading

# Where each category sits in (valence, arousal) space (Russell's circumplex, rough placements).
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "anger": (-0.6, 0.75),
    "disgust": (-0.65, 0.2),
    "fear": (-0.6, 0.6),
    "joy": (0.8, 0.45),
    "neutral": (0.0, -0.1),
    "sadness": (-0.7, -0.55),
    "surprise": (0.15, 0.8),
}
# Words and voice disagree when their (valence, arousal) readings are this far apart. Valence counts half:
# prosody hints at it only weakly, while arousal (energy, pitch range, rate) is what the voice really carries.
INCONGRUENCE_GAP = 0.6
VALENCE_WEIGHT = 0.5
MIN_SPEECH_CONFIDENCE_FOR_INCONGRUENCE = 0.2


def text_affect(scores: dict[str, float]) -> tuple[float, float]:
    valence = sum(p * CIRCUMPLEX.get(label, (0.0, 0.0))[0] for label, p in scores.items())
    arousal = sum(p * CIRCUMPLEX.get(label, (0.0, 0.0))[1] for label, p in scores.items())
    return valence, arousal


def speech_scores(reading: ProsodyReading, labels: tuple[str, ...]) -> dict[str, float]:
    """Turn (valence, arousal) into a soft distribution over categories (closer = likelier)."""
    weights = {
        label: math.exp(
            -((reading.valence - CIRCUMPLEX[label][0]) ** 2 + (reading.arousal - CIRCUMPLEX[label][1]) ** 2) / 0.5
        )
        for label in labels
        if label in CIRCUMPLEX
    }
    total = sum(weights.values()) or 1.0
    return {label: weights.get(label, 0.0) / total for label in labels}


def _top(scores: dict[str, float]) -> tuple[str, float]:
    label = max(scores, key=scores.__getitem__)
    return label, scores[label]


def fuse(text_scores: dict[str, float], reading: ProsodyReading | None, *, speech_weight: float) -> EmotionData:
    """The ``emotion.data`` payload: fused scores plus each channel and an ``incongruent`` flag."""
    labels = tuple(text_scores)
    text_label, text_conf = _top(text_scores)
    text = ChannelEmotion(
        primary_emotion=text_label,
        confidence=round(text_conf, 4),
        scores={k: round(v, 4) for k, v in text_scores.items()},
    )
    fused = dict(text_scores)
    speech = None
    incongruent = False
    if reading is not None:
        voice = speech_scores(reading, labels)
        w_speech = speech_weight * reading.confidence
        w_text = max(1e-6, text_conf)
        fused = {k: (w_text * text_scores[k] + w_speech * voice[k]) / (w_text + w_speech) for k in labels}
        t_val, t_aro = text_affect(text_scores)
        gap = math.hypot(VALENCE_WEIGHT * (t_val - reading.valence), t_aro - reading.arousal)
        speech = SpeechReading(
            arousal=reading.arousal,
            valence=reading.valence,
            confidence=reading.confidence,
            features={k: round(v, 3) for k, v in reading.features.items()},
        )
        incongruent = bool(reading.confidence >= MIN_SPEECH_CONFIDENCE_FOR_INCONGRUENCE and gap >= INCONGRUENCE_GAP)
    label, conf = _top(fused)
    return EmotionData(
        primary_emotion=label,
        confidence=round(min(1.0, conf), 4),
        scores={k: round(v, 4) for k, v in fused.items()},
        text=text,
        speech=speech,
        incongruent=incongruent,
    )
