"""Evaluate the served text-emotion model on a labelled JSONL set ({"text", "label"}), e.g. a separately written
set of multi-sentence spoken turns: accuracy, macro-F1, per-class recall and the confusion matrix.

    python -m scripts.eval_emotion --data PATH.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from backend.config import EMOTIONS, REPO_ROOT, Settings
from backend.engines.text_emotion import MiniLMEmotion

OUT = REPO_ROOT / "scripts" / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    from sklearn.metrics import confusion_matrix, f1_score

    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    model = MiniLMEmotion(Settings().emotion, threads=2)
    scores = model.predict([r["text"] for r in rows])
    truth = np.array([EMOTIONS.index(r["label"]) for r in rows])
    pred = np.array([EMOTIONS.index(max(s, key=s.__getitem__)) for s in scores])
    accuracy = float((truth == pred).mean())
    macro = float(f1_score(truth, pred, average="macro"))
    matrix = confusion_matrix(truth, pred, labels=range(len(EMOTIONS)))
    print(f"{len(rows)} texts from {args.data.name}: accuracy {accuracy:.3f}, macro-F1 {macro:.3f}")
    print(
        "recall per class: "
        + ", ".join(f"{e} {matrix[i, i] / max(matrix[i].sum(), 1):.2f}" for i, e in enumerate(EMOTIONS))
    )
    print("confusion (rows = true, columns = predicted): " + " ".join(e[:4] for e in EMOTIONS))
    for i, emotion in enumerate(EMOTIONS):
        print(f"  {emotion:9s} " + " ".join(f"{v:4d}" for v in matrix[i]))
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"data": str(args.data), "accuracy": accuracy, "macro_f1": macro, "confusion": matrix.tolist()}
    (OUT / f"emotion_eval_{args.data.stem}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
