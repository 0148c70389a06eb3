"""Choose the crisis classifier's threshold on a validation set from a separate writer, as the server decides.

    python -m scripts.calibrate_crisis --val scripts/data/crisis_val_v5.jsonl [--model models/crisis-text]
        [--max-false-alarm 0.02] [--write]

The training split of a writer's own data flatters the classifier (the same writer's hard negatives are easy to
fit), so the threshold is chosen on messages written by someone else, scored exactly as served: the rules' verdict
OR P(crisis) over the whole message and its sentences. The threshold is the lowest whose false-alarm rate on the
validation set stays within ``--max-false-alarm``; ``--write`` stores it (and the figures) in the model's
config.json. Never run this on a test set.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from backend.config import REPO_ROOT, Settings, resolve_model_ref
from backend.engines.crisis_head import CrisisClassifier
from backend.services.safety import CrisisDetector

CANDIDATES = np.round(np.arange(0.05, 0.96, 0.01), 2)


def served_scores(model: str, items: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is crisis, the rules flag it, classifier P(crisis)) for each validation message."""
    detector = CrisisDetector()
    classifier = CrisisClassifier(model, Settings().emotion.encoder)
    truth = np.array([item["label"] != "none" for item in items])
    rules = np.array([detector.check(item["text"]).is_crisis for item in items])
    probability = np.array([classifier.score(item["text"]).probability for item in items])
    return truth, rules, probability


def calibrate(model: str, val: Path, max_false_alarm: float, write: bool) -> dict[str, Any]:
    items = [json.loads(line) for line in val.read_text().splitlines() if line.strip()]
    truth, rules, probability = served_scores(model, items)
    rows = []
    for threshold in CANDIDATES:
        flagged = rules | (probability >= threshold)
        rows.append((float(threshold), float(flagged[truth].mean()), float(flagged[~truth].mean())))
    print(f"{len(items)} validation messages ({int(truth.sum())} crisis, {int((~truth).sum())} ordinary) from {val}")
    print("threshold  recall  false alarms")
    for threshold, recall, false_alarm in rows[::5]:
        print(f"  {threshold:.2f}    {recall:.3f}   {false_alarm:.3f}")
    allowed = [row for row in rows if row[2] <= max_false_alarm]
    threshold, recall, false_alarm = allowed[0] if allowed else rows[-1]
    print(f"chosen {threshold:.2f}: recall {recall:.3f}, false alarms {false_alarm:.3f} (max {max_false_alarm})")
    result = {
        "file": val.name,
        "crisis": int(truth.sum()),
        "ordinary": int((~truth).sum()),
        "max_false_alarm": max_false_alarm,
        "threshold": threshold,
        "recall": round(recall, 4),
        "false_alarm": round(false_alarm, 4),
    }
    if write:
        config = Path(resolve_model_ref(model)) / "config.json"
        meta = json.loads(config.read_text())
        meta["threshold"] = threshold
        meta["calibration"] = result
        config.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"wrote threshold {threshold:.2f} to {config}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "crisis-text"))
    parser.add_argument("--max-false-alarm", type=float, default=0.02)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    calibrate(args.model, args.val, args.max_false_alarm, args.write)


if __name__ == "__main__":
    main()
