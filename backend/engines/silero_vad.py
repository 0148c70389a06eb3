"""Silero VAD (ONNX) with per-stream state, so one loaded model serves every connection."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.config import VADSettings, resolve_model_ref
from backend.core.audio_utils import FloatAudio

_CONTEXT = 64  # samples of the previous frame the 16 kHz model expects in front of each frame


class _SileroStream:
    def __init__(self, session: object) -> None:
        self._session = session
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)
        self._sr = np.array(16000, dtype=np.int64)

    def speech_prob(self, frame: FloatAudio) -> float:
        x = np.concatenate([self._context, frame.reshape(1, -1).astype(np.float32)], axis=1)
        out, self._state = self._session.run(  # type: ignore[attr-defined]
            None, {"input": x, "state": self._state, "sr": self._sr}
        )
        self._context = x[:, -_CONTEXT:]
        return float(out[0][0])


class SileroVAD:
    frame_samples = 512

    def __init__(self, settings: VADSettings, threads: int = 1) -> None:
        import onnxruntime

        path = Path(resolve_model_ref("package:silero_vad/data")) / "silero_vad.onnx"
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.name = "Silero VAD v6 (ONNX)"
        self.settings = settings

    def new_stream(self) -> _SileroStream:
        return _SileroStream(self._session)
