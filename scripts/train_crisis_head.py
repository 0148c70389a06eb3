"""Train the crisis classifier: the packaged MiniLM-L6 with its own LoRA adapters on the top layers + a 9-way head
(eight crisis categories and "none"), the same recipe and file format as the emotion model.

    python -m scripts.train_crisis_head [--out models/crisis-text]

Data: ``scripts/data/crisis_train.jsonl`` (crisis messages in eight categories, written in many styles, and hard
negatives) plus every emotion training text as ordinary ("none") talk. A frozen-embedding linear head could not
separate crises from the hard negatives (out-of-fold: recall 0.94 at 22% false alarms), so the top layers are
adapted. The threshold on P(crisis) = 1 - P(none) is chosen on a 20% validation split of the training data (never
on test data): the lowest threshold whose false-alarm rate there stays <= ``--max-false-alarm``; then the model is
refitted on everything. With ``--calibrate VAL`` the model is fitted once on all the training data and the threshold
is chosen on VAL, a validation set from another writer, exactly as served (``scripts/calibrate_crisis.py``): a
writer's own held-back lines flatter the model. The server scores a message whole and sentence by sentence and keeps
the highest.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from backend.config import REPO_ROOT, resolve_model_ref
from backend.engines.crisis_head import CRISIS_LABELS, NONE
from scripts.train_emotion_head import ENCODER, EmotionTrainer, FitConfig

DATA = REPO_ROOT / "scripts" / "data"


def load(path: Path, label: str | None = None) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["text"], label or r["label"]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "crisis-text")
    parser.add_argument("--max-false-alarm", type=float, default=0.02)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=6, help="top MiniLM layers that get LoRA adapters (of 6)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--data", type=Path, nargs="+", default=[DATA / "crisis_train.jsonl", DATA / "crisis_neg_v2.jsonl"]
    )
    parser.add_argument(
        "--no-refit", action="store_true", help="ship the model fitted on the 80%% split (half the training time)"
    )
    parser.add_argument(
        "--calibrate",
        type=Path,
        help="a validation set from another writer: fit on all the training data (no split) and choose the "
        "threshold on it as served (scripts/calibrate_crisis.py)",
    )
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    import torch
    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    data = [row for path in args.data for row in load(path)]
    for everyday in [DATA / "emotion_texts.jsonl", *sorted(DATA.glob("emotion_multisentence_train*.jsonl"))]:
        data += load(everyday, NONE)
    texts = [t for t, _ in data]
    y = np.array([CRISIS_LABELS.index(lab) for _, lab in data])
    print(f"{len(texts)} texts: " + ", ".join(f"{c} {int((y == i).sum())}" for i, c in enumerate(CRISIS_LABELS)))
    cfg = FitConfig(
        layers=args.layers,
        rank=args.rank,
        alpha=2.0 * args.rank,
        lr=args.lr,
        epochs=args.epochs,
        class_weight_power=0.5,
        bf16=False,
        seed=args.seed,
    )
    encoder = SentenceTransformer(resolve_model_ref(ENCODER), device="cpu", local_files_only=True)
    trainer = EmotionTrainer(encoder, cfg, classes=len(CRISIS_LABELS))
    start = time.perf_counter()
    states = trainer.hidden(texts)
    print(f"frozen layers cached in {time.perf_counter() - start:.0f} s")
    none = CRISIS_LABELS.index(NONE)
    rows = np.arange(len(texts))
    if args.calibrate:
        start = time.perf_counter()
        top, head = trainer.fit(states, y, rows)
        print(f"fitted on all {len(rows)} in {time.perf_counter() - start:.0f} s")
        threshold, validation = 0.5, {"split": None}  # replaced by the calibration below
    else:
        top, head, threshold, validation = split_fit(trainer, states, y, none, args.max_false_alarm, cfg.seed)
        if not args.no_refit:
            top, head = trainer.fit(states, y, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    tensors = {
        "weight": head.weight.detach().numpy().astype(np.float32),
        "bias": head.bias.detach().numpy().astype(np.float32),
        **trainer.lora_tensors(top),
    }
    save_file(tensors, str(args.out / "head.safetensors"))
    meta = {
        "labels": list(CRISIS_LABELS),
        "temperature": 1.0,
        "normalize_embeddings": True,
        "encoder": ENCODER,
        "encoder_path": None,
        "lora": {
            "layers": list(range(trainer.split, trainer.split + cfg.layers)),
            "rank": cfg.rank,
            "alpha": cfg.alpha,
        },
        "threshold": threshold,
        "fit": {
            "texts": len(texts),
            "epochs": cfg.epochs,
            "class_weight_power": cfg.class_weight_power,
            "max_false_alarm": args.max_false_alarm,
            "refit_on_all": bool(args.calibrate) or not args.no_refit,
            "seed": cfg.seed,
            "data": [str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else p.name for p in args.data],
        },
        "validation": validation,
    }
    (args.out / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"saved {args.out}")
    if args.calibrate:
        from scripts.calibrate_crisis import calibrate

        calibrate(str(args.out), args.calibrate, args.max_false_alarm, write=True)


def split_fit(
    trainer: EmotionTrainer, states: list[Any], y: np.ndarray, none: int, max_false_alarm: float, seed: int
) -> tuple[Any, Any, float, dict[str, Any]]:
    """Fit on 80% of the training data; the threshold is the lowest with <= ``max_false_alarm`` on the rest."""
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(np.arange(len(states)), test_size=0.2, stratify=y, random_state=seed)
    start = time.perf_counter()
    top, head = trainer.fit([states[i] for i in train], y[train], np.arange(len(train)))
    print(f"fitted on {len(train)} in {time.perf_counter() - start:.0f} s")
    logits = trainer.logits(top, head, [states[i] for i in val])
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    score, crisis = 1.0 - probs[:, none], y[val] != none
    candidates = np.linspace(0.05, 0.95, 91)
    far = np.array([(score[~crisis] >= t).mean() for t in candidates])
    for t in (0.2, 0.35, 0.5, 0.65, 0.8):
        recall_t, far_t = (score[crisis] >= t).mean(), (score[~crisis] >= t).mean()
        print(f"  threshold {t:.2f}: recall {recall_t:.3f}, false alarms {far_t:.3f}")
    allowed = np.flatnonzero(far <= max_false_alarm)
    threshold = float(candidates[allowed[0]] if len(allowed) else candidates[-1])
    recall, false_alarm = float((score[crisis] >= threshold).mean()), float((score[~crisis] >= threshold).mean())
    category_ok = float((probs[crisis][:, :none].argmax(1) == y[val][crisis]).mean())
    print(
        f"threshold {threshold:.2f}: validation recall {recall:.3f}, false alarms {false_alarm:.3f}, "
        f"category right {category_ok:.3f}"
    )
    validation = {
        "split": 0.2,
        "recall": round(recall, 4),
        "false_alarm": round(false_alarm, 4),
        "category_accuracy": round(category_ok, 4),
    }
    return top, head, threshold, validation


if __name__ == "__main__":
    main()
