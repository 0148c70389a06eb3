"""Smart Turn v3.2 (pipecat, BSD-2): an acoustic end-of-turn model, P(the speaker finished) from the last 8 s of audio.

A Whisper-tiny encoder with a classifier head, exported to ONNX (8.7 MB, int8). It hears intonation and the way the
last word trails off, which the transcript cannot show. It was trained on human speech and misfires on synthetic
voices, so the turn policy uses it as one signal of three (``endpointing.combined_end_silence_ms``), never alone.

The file ships inside the ``pipecat-ai`` wheel; it is read from the package folder without importing pipecat (which
would pull in its many dependencies): ``pip install --no-deps pipecat-ai==1.14.0``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.config import Device
from backend.engines.devices import resolve_device
from backend.engines.whisper_features import SAMPLE_RATE, log_mel

WINDOW_S = 8
WINDOW_SAMPLES = WINDOW_S * SAMPLE_RATE
INSTALL_HINT = "pip install --no-deps pipecat-ai==1.14.0 (or set vad.smart_turn: false)"


def last_window(audio_16k: np.ndarray) -> np.ndarray:
    """The last 8 s, zero-padded at the start when shorter (as pipecat feeds the model: the end stays aligned)."""
    x = np.asarray(audio_16k, dtype=np.float32).reshape(-1)[-WINDOW_SAMPLES:]
    return np.pad(x, (WINDOW_SAMPLES - x.size, 0)) if x.size < WINDOW_SAMPLES else x


def onnx_providers(device: Device) -> tuple[list[str], str]:
    """ONNX Runtime providers for a configured device: (providers, resolved device). ``auto`` uses CUDA only when
    both a GPU and onnxruntime's CUDA provider are there; an explicit ``cuda`` without that provider is an error."""
    import onnxruntime

    resolved = resolve_device(device)
    if resolved == "cuda":
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"
        if device == "cuda":
            raise RuntimeError("device 'cuda' was configured but onnxruntime has no CUDAExecutionProvider")
    return ["CPUExecutionProvider"], "cpu"


class SmartTurn:
    """P(turn complete) for the audio of a turn so far. Thread-safe (ONNX Runtime sessions are)."""

    name = "Smart Turn v3.2 (ONNX)"

    def __init__(self, path: str | Path, threads: int = 1, device: Device = "cpu") -> None:
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Smart Turn model not found at {path}: {INSTALL_HINT}")
        providers, self.device = onnx_providers(device)
        opts = onnxruntime.SessionOptions()
        opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(str(path), sess_options=opts, providers=providers)
        self._input = self._session.get_inputs()[0].name

    def probability(self, audio_16k: np.ndarray) -> float:
        """P(complete) in [0, 1] for 16 kHz mono float audio ending now (the model's output is already a sigmoid)."""
        features = log_mel(last_window(audio_16k))[None, :, :]
        (out,) = self._session.run(None, {self._input: features})
        return float(np.clip(np.asarray(out).reshape(-1)[0], 0.0, 1.0))
