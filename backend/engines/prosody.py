"""Speech emotion from prosody alone (numpy): pitch, energy, speaking rate, pauses, voice steadiness.

What the voice channel can tell: how activated the speaker sounds (arousal) fairly well, and a weak hint of
valence (a flat, slow, quiet voice leans negative; a lively, varied one positive). It cannot name categories like
disgust vs anger, and synthetic or very short speech carries little information, so confidence stays low
(never above ``MAX_CONFIDENCE``) and shrinks with little voiced audio.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from backend.core.audio_utils import FloatAudio
from backend.engines.protocols import ProsodyReading

MAX_CONFIDENCE = 0.6
FRAME_S = 0.040
HOP_S = 0.010
F0_MIN, F0_MAX = 70.0, 400.0

# Rough population norms for conversational speech (mean, spread) used to z-score each feature.
NORMS: dict[str, tuple[float, float]] = {
    "energy_db": (-26.0, 6.0),  # voiced-frame RMS in dBFS
    "f0_range_st": (7.0, 3.0),  # 10th-90th percentile pitch range, semitones
    "speech_rate_wps": (2.6, 0.8),  # words per voiced second
    "pause_ratio": (0.25, 0.12),  # silent share between first and last voiced frame
    "f0_jitter_st": (0.6, 0.4),  # median frame-to-frame pitch change, semitones
}


def _frames(audio: FloatAudio, rate: int) -> npt.NDArray[np.float32]:
    size, hop = int(FRAME_S * rate), int(HOP_S * rate)
    if audio.size < size:
        return np.zeros((0, size), dtype=np.float32)
    count = 1 + (audio.size - size) // hop
    idx = np.arange(size)[None, :] + hop * np.arange(count)[:, None]
    return np.asarray(audio[idx], dtype=np.float32)


def _pitch(frame: npt.NDArray[np.float32], rate: int) -> tuple[float, float]:
    """(f0 Hz, periodicity 0..1) by normalized autocorrelation."""
    x = frame - frame.mean()
    energy = float(np.dot(x, x))
    if energy <= 1e-10:
        return 0.0, 0.0
    corr = np.correlate(x, x, mode="full")[x.size - 1 :] / energy
    lo, hi = int(rate / F0_MAX), min(int(rate / F0_MIN), corr.size - 1)
    if hi <= lo:
        return 0.0, 0.0
    lag = lo + int(np.argmax(corr[lo:hi]))
    return rate / lag, float(corr[lag])


def extract_features(audio: FloatAudio, rate: int, transcript: str) -> dict[str, float]:
    frames = _frames(audio, rate)
    if frames.shape[0] == 0:
        return {"voiced_s": 0.0}
    rms = np.sqrt(np.mean(frames**2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    floor, peak = float(np.percentile(db, 10)), float(np.percentile(db, 95))
    # Active = well above the noise floor; for speech without pauses (floor ~ peak) fall back to peak - 20 dB.
    active = db > max(min(floor + 10.0, peak - 20.0), -55.0)
    f0 = np.zeros(frames.shape[0])
    for i in np.flatnonzero(active):
        hz, periodicity = _pitch(frames[i], rate)
        if periodicity > 0.45:
            f0[i] = hz
    voiced = f0 > 0
    voiced_s = float(voiced.sum() * HOP_S)
    feats: dict[str, float] = {"voiced_s": voiced_s}
    if voiced.sum() < 5:
        return feats
    semitones = 12 * np.log2(f0[voiced] / 100.0)
    first, last = np.flatnonzero(active)[[0, -1]]
    span = active[first : last + 1]
    words = len(transcript.split())
    feats.update(
        f0_median_hz=float(np.median(f0[voiced])),
        f0_range_st=float(np.percentile(semitones, 90) - np.percentile(semitones, 10)),
        f0_jitter_st=float(np.median(np.abs(np.diff(semitones)))) if semitones.size > 1 else 0.0,
        energy_db=float(np.mean(db[voiced])),
        pause_ratio=float(1.0 - span.mean()),
        speech_rate_wps=float(words / max(voiced_s, 0.3)) if words else NORMS["speech_rate_wps"][0],
    )
    return feats


def _z(feats: dict[str, float], key: str) -> float:
    mean, spread = NORMS[key]
    return float(np.clip((feats[key] - mean) / spread, -3, 3))


class ProsodyEmotion:
    name = "prosody (pitch, energy, rate, pauses)"

    def analyze(self, audio: FloatAudio, sample_rate: int, transcript: str) -> ProsodyReading:
        feats = extract_features(audio, sample_rate, transcript)
        if "energy_db" not in feats:
            return ProsodyReading(arousal=0.0, valence=0.0, confidence=0.0, features=feats)
        z_energy, z_range = _z(feats, "energy_db"), _z(feats, "f0_range_st")
        z_rate, z_pause = _z(feats, "speech_rate_wps"), _z(feats, "pause_ratio")
        arousal = math.tanh(0.45 * z_energy + 0.3 * z_range + 0.25 * z_rate - 0.2 * z_pause)
        valence = math.tanh(0.35 * z_range + 0.15 * z_rate - 0.25 * z_pause + 0.1 * z_energy)
        # Evidence grows with voiced speech (saturating at ~3 s); very unusual readings are trusted less.
        evidence = min(1.0, feats["voiced_s"] / 3.0)
        oddity = max(abs(z_energy), abs(z_range), abs(z_rate)) / 3.0
        confidence = MAX_CONFIDENCE * evidence * (1.0 - 0.5 * oddity)
        return ProsodyReading(
            arousal=round(arousal, 3),
            valence=round(valence, 3),
            confidence=round(confidence, 3),
            features=feats,
        )
