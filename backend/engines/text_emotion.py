"""Text emotion: MiniLM sentence embeddings + our trained head (models/emotion-text/).

The head is a softmax-regression layer stored as safetensors (``weight`` [C, D], ``bias`` [C]) with a
temperature fitted on held-out data, so the probabilities it returns are calibrated. The same file may hold
low-rank (LoRA) adapters for the encoder, ``lora.<layer>.<module>.A`` [r, in] and ``.B`` [out, r], described by
``config.json["lora"]``; they are merged into the packaged MiniLM's weights at load time (W += alpha/r * B @ A),
so a fine-tuned encoder costs a few hundred KB in git and nothing extra at inference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from backend.config import EmotionSettings, resolve_model_ref


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=-1, keepdims=True), dtype=np.float32)


class EmotionHead:
    """Weights + labels + temperature, loadable without torch."""

    def __init__(self, path: Path) -> None:
        from safetensors.numpy import load_file

        meta = json.loads((path / "config.json").read_text())
        tensors = load_file(str(path / "head.safetensors"))
        self.labels: tuple[str, ...] = tuple(meta["labels"])
        self.temperature = float(meta.get("temperature", 1.0))
        self.normalize = bool(meta.get("normalize_embeddings", True))
        self.weight = tensors["weight"].astype(np.float32)
        self.bias = tensors["bias"].astype(np.float32)
        self.encoder_path: str | None = meta.get("encoder_path")
        lora = meta.get("lora") or {}
        self.lora_scale = float(lora.get("alpha", 1.0)) / float(lora.get("rank", 1)) if lora else 0.0
        self.lora: dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {
            key.removesuffix(".A"): (tensors[key], tensors[key.removesuffix(".A") + ".B"])
            for key in tensors
            if key.startswith("lora.") and key.endswith(".A")
        }
        if self.weight.shape[0] != len(self.labels):
            raise ValueError(f"head has {self.weight.shape[0]} rows but {len(self.labels)} labels")

    def probabilities(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        logits = embeddings @ self.weight.T + self.bias
        return softmax(logits / self.temperature)


class MiniLMEmotion:
    """MiniLM-L6 (numpy, torch-free) + the trained head; the head's LoRA deltas are merged into the encoder."""

    def __init__(self, settings: EmotionSettings, threads: int = 1) -> None:
        from backend.engines.minilm_numpy import NumpyMiniLM

        head_dir = Path(resolve_model_ref(settings.head_path))
        if not (head_dir / "head.safetensors").exists():
            raise FileNotFoundError(f"no emotion head at {head_dir} (run scripts/train_emotion_head.py)")
        self.head = EmotionHead(head_dir)
        # A head trained with a fine-tuned encoder names it (relative to the head folder).
        encoder = (
            str(head_dir / self.head.encoder_path) if self.head.encoder_path else resolve_model_ref(settings.encoder)
        )
        self.device = "cpu"  # a 22M-parameter encoder: a few ms per message on one core, no GPU needed
        self.encoder = NumpyMiniLM(Path(encoder), self.head.lora, self.head.lora_scale, threads)
        self.labels = self.head.labels
        adapted = f" + LoRA x{len(self.head.lora)}" if self.head.lora else ""
        self.name = f"MiniLM-L6{adapted} + emotion head ({head_dir.name})"

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.encoder.embed(texts, normalize=self.head.normalize)

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        if not texts:
            return []
        probs = self.head.probabilities(self.embed(texts))
        return [{label: float(p) for label, p in zip(self.labels, row, strict=True)} for row in probs]
