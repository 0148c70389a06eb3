"""Evaluate the crisis net on a separately written test set (never trained or tuned on).

    python -m scripts.eval_crisis --data PATH/crisis_test.jsonl [--conversations PATH/crisis_conversations.jsonl]

Single messages: {"text", "label"} with label a crisis category or "none". Conversations: {"turns": [...],
"crisis_at" (or "crisis_from_turn"): index or null, "label"}. Reports recall per category and overall, the
false-alarm rate, whether the category (and so the resources) fit, for the rules alone, the classifier alone and
the served decision (rules OR classifier); for conversations, whether the first flagged turn is the expected one.
Writes a JSON next to the benchmark results.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from backend.config import REPO_ROOT, Settings
from backend.engines.crisis_head import CrisisClassifier
from backend.services.crisis import decide
from backend.services.safety import CrisisDetector

OUT = REPO_ROOT / "scripts" / "bench" / "results"
# The rules' categories, mapped to the classifier's (a rules hit on "immediate danger" fits any acute category).
RULE_FITS = {
    "immediate_danger": {
        "medical_emergency",
        "abuse_adult",
        "abuse_child",
        "harm_to_others",
        "psychosis",
        "suicidal_ideation",
        "self_harm",
        "eating_disorder",
    },
    "suicidal_ideation": {"suicidal_ideation"},
    "self_harm": {"self_harm", "suicidal_ideation"},
}


def fits(predicted: str, truth: str) -> bool:
    return predicted == truth or truth in RULE_FITS.get(predicted, set())


def report(name: str, rows: list[tuple[str, str | None]]) -> dict[str, Any]:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # caught, category fits, total
    false_alarms = negatives = 0
    for truth, predicted in rows:
        if truth == "none":
            negatives += 1
            false_alarms += predicted is not None
            continue
        per[truth][2] += 1
        if predicted is not None:
            per[truth][0] += 1
            per[truth][1] += fits(predicted, truth)
    caught = sum(v[0] for v in per.values())
    total = sum(v[2] for v in per.values())
    result = {
        "recall": round(caught / max(total, 1), 4),
        "category_fits": round(sum(v[1] for v in per.values()) / max(caught, 1), 4),
        "false_alarm_rate": round(false_alarms / max(negatives, 1), 4),
        "crisis": total,
        "ordinary": negatives,
        "per_category": {
            k: {"recall": round(v[0] / v[2], 3), "n": v[2], "category_fits": v[1]} for k, v in sorted(per.items())
        },
    }
    print(
        f"\n{name}: recall {result['recall']:.3f} ({caught}/{total}), false alarms {result['false_alarm_rate']:.3f} "
        f"({false_alarms}/{negatives}), category fits {result['category_fits']:.3f}"
    )
    for category, v in sorted(per.items()):
        print(f"  {category:18s} {v[0]:3d}/{v[2]:<3d} caught, {v[1]:3d} with a fitting category")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--conversations", type=Path)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    detector = CrisisDetector()
    classifier = CrisisClassifier(settings.safety.classifier_path or "models/crisis-text", settings.emotion.encoder)
    print(f"classifier threshold {classifier.threshold:.2f}")
    items = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    rules, model, served = [], [], []
    for item in items:
        verdict = detector.check(item["text"])
        rules.append((item["label"], verdict.category if verdict.is_crisis else None))
        score = classifier.score(item["text"])
        model.append((item["label"], score.category if score.is_crisis else None))
        decision = decide(detector, classifier, item["text"], [])
        served.append((item["label"], decision.category))
        if args.show_misses and (item["label"] == "none") != (decision.category is None):
            print(f"  MISS {item['label']:18s} -> {decision.category}: {item['text'][:110]}")
    results: dict[str, Any] = {"threshold": classifier.threshold, "data": str(args.data)}
    results["rules"] = report("rules alone", rules)
    results["classifier"] = report("classifier alone", model)
    results["served"] = report("served: rules OR classifier", served)
    if args.conversations:
        convs = [json.loads(line) for line in args.conversations.read_text().splitlines() if line.strip()]
        right = 0
        for conv in convs:
            flagged = None
            for i, turn in enumerate(conv["turns"]):
                if decide(detector, classifier, turn, conv["turns"][:i]).category is not None:
                    flagged = i
                    break
            expected = conv.get("crisis_at", conv.get("crisis_from_turn"))
            ok = flagged is None if expected is None else flagged is not None and flagged <= expected
            right += ok
            if args.show_misses and not ok:
                print(f"  CONV expected {expected}, flagged {flagged}: {conv['turns']}")
        results["conversations"] = {"right": right, "total": len(convs)}
        print(f"\nconversations: {right}/{len(convs)} flagged at (or before) the expected turn, ordinary ones never")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "crisis_eval.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
