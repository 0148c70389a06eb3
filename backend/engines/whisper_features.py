"""Whisper log-mel features in numpy (no torch, no transformers at serving time).

The same numbers as ``transformers.WhisperFeatureExtractor(feature_size=80, chunk_length=...)`` with
``do_normalize=True`` on a clip already padded to the window (checked against it in tests/unit/test_smart_turn.py):
zero-mean unit-variance waveform, centred STFT (reflect padding, periodic Hann window, n_fft 400, hop 160), power
spectrum onto 80 Slaney mel filters, log10, clamped to 8 decades below the peak, then scaled by (x + 4) / 4.
The maths follows transformers' feature_extraction_whisper.py and audio_utils.py (Apache-2.0), as pipecat's
vendored copy does.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
_MEL_FLOOR = 1e-10
_NORM_EPS = 1e-7


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney scale: linear below 1 kHz, logarithmic above."""
    mels = 3.0 * freq / 200.0
    high = freq >= 1000.0
    mels[high] = 15.0 + np.log(freq[high] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freq = 200.0 * mels / 3.0
    high = mels >= 15.0
    freq[high] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[high] - 15.0))
    return freq


@cache
def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Slaney-normalised triangular filters, shape (n_fft // 2 + 1, n_mels), float64."""
    low, high = _hz_to_mel(np.array([0.0, sample_rate / 2.0]))
    edges = _mel_to_hz(np.linspace(low, high, n_mels + 2))
    fft_freqs = np.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    slopes = edges[None, :] - fft_freqs[:, None]
    widths = np.diff(edges)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters: np.ndarray = np.maximum(0.0, np.minimum(down, up)) * (2.0 / (edges[2:] - edges[:-2]))[None, :]
    return filters


@cache
def _hann(n_fft: int = N_FFT) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1]  # periodic, as torch.hann_window


def log_mel(audio_16k: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    """(80, len(audio) // 160) float32 log-mel features of 16 kHz mono audio (pad or trim it to the window first)."""
    if audio_16k.ndim != 1:
        raise ValueError(f"expected 1-D audio, got shape {audio_16k.shape}")
    x = audio_16k.astype(np.float32)
    if normalize:  # in float32, before the spectrogram, as transformers does
        x = (x - x.mean()) / np.sqrt(x.var() + _NORM_EPS)
    pad = N_FFT // 2
    frames = sliding_window_view(np.pad(x.astype(np.float64), (pad, pad), mode="reflect"), N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _hann(), axis=-1)) ** 2  # (frames, bins)
    mel = np.log10(np.maximum(_MEL_FLOOR, power @ mel_filters())).T[:, :-1]  # the last frame is dropped
    mel = np.maximum(mel, mel.max() - 8.0)
    features: np.ndarray = ((mel + 4.0) / 4.0).astype(np.float32)
    return features
