"""Train the ClarityMentor LoRA adapter on SmolLM2-135M-Instruct (CPU, a few minutes on 2 cores).

    python -m scripts.train_lora [--epochs N] [--out models/claritymentor-lora/final] [--seed 7]

Every training prompt is built by ``backend.services.prompting.build_messages`` (persona + history within the
service's token budget + emotion-tagged user turn) and rendered with the tokenizer's chat template, so the adapter
sees exactly the format it is served with. Loss is on the assistant reply and its ``<|im_end|>`` only.

Turns of one dialogue whose prompts extend each other token for token are packed into one sequence: with causal
attention each reply is then trained on precisely its own prompt, at a fraction of the compute.
About 8 % of the dialogues (chosen by the seed) are held out for the validation loss.
Evaluate afterwards with ``python -m scripts.eval_mentor`` (it fills the model card's evaluation section).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.config import REPO_ROOT, LLMSettings, Settings
from backend.models.emotion import as_emotion
from backend.services.prompting import HistoryTurn, build_messages

DATA = REPO_ROOT / "scripts" / "data" / "mentor_dialogues.jsonl"
OUT = REPO_ROOT / "models" / "claritymentor-lora" / "final"
EVAL_START = "<!-- eval:start -->"
EVAL_END = "<!-- eval:end -->"
END_OF_TURN = "<|im_end|>"
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True, slots=True)
class Example:
    """One training sequence: token ids and, per token, whether it is a target (assistant reply) token."""

    dialogue_id: str
    input_ids: list[int]
    target_mask: list[bool]

    @property
    def n_targets(self) -> int:
        return sum(self.target_mask)


@dataclass(frozen=True, slots=True)
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float
    seconds: float


def load_dialogues(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def split_dialogues(
    dialogues: list[dict[str, Any]], val_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Deterministic held-out split by dialogue (never by turn), stratified by topic."""
    rng = random.Random(seed)
    by_topic: dict[str, list[int]] = {}
    for i, dialogue in enumerate(dialogues):
        by_topic.setdefault(str(dialogue.get("topic", "")), []).append(i)
    held: set[int] = set()
    for topic in sorted(by_topic):
        indices = sorted(by_topic[topic], key=lambda i: str(dialogues[i]["id"]))
        rng.shuffle(indices)
        held.update(indices[: max(1, round(len(indices) * val_fraction))])
    train = [d for i, d in enumerate(dialogues) if i not in held]
    val = [d for i, d in enumerate(dialogues) if i in held]
    return train, val


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return [int(t) for t in encoded["input_ids"]]


def dialogue_turns(
    dialogue: dict[str, Any], tokenizer: Any, history_token_budget: int
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, target ids) for every assistant reply, with the prompt built exactly as the service builds it."""

    def count_tokens(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    messages: list[dict[str, Any]] = dialogue["messages"]
    turns: list[tuple[list[int], list[int]]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or i == 0 or messages[i - 1]["role"] != "user":
            continue
        user = messages[i - 1]
        history = [HistoryTurn(m["role"], m["content"], as_emotion(m.get("emotion"))) for m in messages[: i - 1]]
        prompt = build_messages(
            history,
            user["content"],
            as_emotion(user.get("emotion")),
            count_tokens=count_tokens,
            history_token_budget=history_token_budget,
        )
        prompt_ids = chat_ids(tokenizer, [{"role": m.role, "content": m.content} for m in prompt])
        target_ids = tokenizer.encode(message["content"] + END_OF_TURN, add_special_tokens=False)
        turns.append((prompt_ids, [int(t) for t in target_ids]))
    return turns


def pack_turns(dialogue_id: str, turns: list[tuple[list[int], list[int]]]) -> list[Example]:
    """Merge consecutive turns when the later prompt starts with the earlier prompt + reply, token for token."""
    examples: list[Example] = []
    ids: list[int] = []
    mask: list[bool] = []
    for prompt_ids, target_ids in turns:
        if ids and prompt_ids[: len(ids)] == ids:
            extra = prompt_ids[len(ids) :]
            ids, mask = prompt_ids + target_ids, [*mask, *([False] * len(extra)), *([True] * len(target_ids))]
            continue
        if ids:
            examples.append(Example(dialogue_id, ids, mask))
        ids, mask = prompt_ids + target_ids, [False] * len(prompt_ids) + [True] * len(target_ids)
    if ids:
        examples.append(Example(dialogue_id, ids, mask))
    return examples


def build_examples(dialogues: list[dict[str, Any]], tokenizer: Any, history_token_budget: int) -> list[Example]:
    examples: list[Example] = []
    for dialogue in dialogues:
        turns = dialogue_turns(dialogue, tokenizer, history_token_budget)
        examples.extend(pack_turns(str(dialogue["id"]), turns))
    return examples


def sequence_loss(model: Any, example: Example, bf16: bool) -> tuple[Any, int]:
    """Summed next-token cross-entropy over the target tokens (the LM head runs only where a target is predicted)."""
    import torch

    ids = torch.tensor([example.input_ids])
    targets = torch.tensor([i for i, is_target in enumerate(example.target_mask) if is_target])
    causal_lm = model.get_base_model()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden = causal_lm.model(input_ids=ids).last_hidden_state[0]
        logits = causal_lm.lm_head(hidden[targets - 1])
    loss = torch.nn.functional.cross_entropy(logits.float(), ids[0, targets], reduction="sum")
    return loss, len(targets)


def mean_loss(model: Any, examples: list[Example], bf16: bool) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for example in examples:
            loss, n = sequence_loss(model, example, bf16)
            total, count = total + float(loss), count + n
    return total / max(count, 1)


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def train(model: Any, train_set: list[Example], val_set: list[Example], args: argparse.Namespace) -> list[EpochLog]:
    import torch
    from tqdm import tqdm  # type: ignore[import-untyped]

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(train_set) / args.accum)
    total_steps = steps_per_epoch * args.epochs
    warmup = max(1, round(total_steps * 0.08))
    logs: list[EpochLog] = []
    step = 0
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        order = list(range(len(train_set)))
        random.Random(args.seed * 1000 + epoch).shuffle(order)
        model.train()
        epoch_loss, epoch_tokens, ema = 0.0, 0, float("nan")
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", unit="step", dynamic_ncols=True)
        for batch_index in bar:
            batch = [train_set[i] for i in order[batch_index * args.accum : (batch_index + 1) * args.accum]]
            n_tokens = sum(e.n_targets for e in batch)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, warmup, args.lr)
            batch_loss = 0.0
            for example in batch:
                loss, _ = sequence_loss(model, example, args.bf16)
                (loss / n_tokens).backward()
                batch_loss += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            epoch_loss, epoch_tokens = epoch_loss + batch_loss, epoch_tokens + n_tokens
            current = batch_loss / n_tokens
            ema = current if math.isnan(ema) else 0.9 * ema + 0.1 * current
            bar.set_postfix(loss=f"{ema:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.1e}")
        bar.close()
        val_loss = mean_loss(model, val_set, args.bf16)
        seconds = time.perf_counter() - started
        logs.append(EpochLog(epoch, epoch_loss / epoch_tokens, val_loss, seconds))
        print(f"epoch {epoch}: train loss {epoch_loss / epoch_tokens:.4f}, val loss {val_loss:.4f} ({seconds:.0f} s)")
    return logs


def topic_counts(dialogues: list[dict[str, Any]]) -> str:
    counts = Counter(str(d.get("topic", "?")) for d in dialogues)
    return ", ".join(f"{topic} {n}" for topic, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def model_card(
    *,
    args: argparse.Namespace,
    dialogues: list[dict[str, Any]],
    val_dialogues: list[dict[str, Any]],
    train_set: list[Example],
    val_set: list[Example],
    n_replies: int,
    base_val_loss: float,
    logs: list[EpochLog],
    trainable: int,
    total_seconds: float,
) -> str:
    def rel(path: Path) -> str:
        return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)

    epoch_rows = "\n".join(f"| {e.epoch} | {e.train_loss:.4f} | {e.val_loss:.4f} | {e.seconds:.0f} |" for e in logs)
    train_tokens = sum(len(e.input_ids) for e in train_set)
    return f"""# ClarityMentor LoRA for SmolLM2-135M-Instruct

A LoRA adapter that turns SmolLM2-135M-Instruct into the ClarityMentor voice: acknowledge the feeling, one small
concrete next step, at most one question, at most three short sentences, never speaking as an AI.
The service merges it into the base model at load (`PeftModel.from_pretrained(base, path).merge_and_unload()`).

Reproduce (CPU, from the repo root):

    {shlex.join(["python", "-m", "scripts.train_lora", *args.argv])}
    {shlex.join(["python", "-m", "scripts.eval_mentor", *([] if args.out == OUT else ["--adapter", rel(args.out)])])}

## Data
- `{rel(args.data)}`: {len(dialogues)} multi-turn mentor dialogues written for this project
  ({n_replies} assistant replies), each user turn carrying the emotion the service would detect.
- Topics: {topic_counts(dialogues)}.
- Validation: {len(val_dialogues)} dialogues ({args.val_fraction:.0%}, stratified by topic, chosen by seed {args.seed})
  held out for the loss; training: {len(dialogues) - len(val_dialogues)} dialogues.
- Every prompt is built by `backend.services.prompting.build_messages` (history budget {args.history_budget} tokens)
  and the tokenizer's chat template, exactly as served; loss only on the reply and its `<|im_end|>`.
  Turns of a dialogue are packed into one sequence where the later prompt extends the earlier one token for token
  (causal attention keeps this identical to one sequence per reply): {len(train_set)} training sequences
  ({train_tokens} tokens per epoch), {len(val_set)} validation sequences.
- The 48 evaluation prompts (`scripts/data/mentor_eval_prompts.jsonl`) are never trained on.

## Training
| setting | value |
|---|---|
| base model | SmolLM2-135M-Instruct (float32, de-quantized from the packaged GGUF) |
| LoRA | r = {args.rank}, alpha = {args.alpha}, dropout = {args.dropout}, targets {", ".join(args.targets)} |
| trainable parameters | {trainable:,} |
| optimizer | AdamW, peak lr {args.lr:g}, weight decay 0, 8 % warm-up then cosine to 10 %, grad-norm clip 1.0 |
| batch | {args.accum} sequences per step (gradient accumulation, loss averaged over target tokens) |
| epochs | {args.epochs} |
| precision | {"bfloat16 autocast, float32 weights" if args.bf16 else "float32"} |
| seed | {args.seed} (LoRA init, dropout, split and data order) |
| hardware | CPU, {args.threads} threads |
| training time | {total_seconds / 60:.1f} min (incl. data preparation and loss evaluation) |

Validation loss (per target token) of the base model before training: {base_val_loss:.4f}.

| epoch | train loss | val loss | seconds |
|---|---|---|---|
{epoch_rows}

Final: train loss {logs[-1].train_loss:.4f}, val loss {logs[-1].val_loss:.4f}.

## Evaluation
{EVAL_START}
Not evaluated yet: run `python -m scripts.eval_mentor` (it fills in this section).
{EVAL_END}

## Limits
English only; tiny base model, so advice stays generic and facts are not reliable. The style (short, one question,
names the feeling) is learnt from {len(dialogues)} dialogues; unusual requests can still get off-persona replies.
Like the training dialogues, it usually ends a first reply with one question, so it asks more questions than the
base model does (which rarely asks any, and often rambles or breaks off instead).
"""


def shrink_adapter(folder: Path, rank: int) -> None:
    """Ship the adapter small: the best rank-``rank`` approximation (SVD) of each trained update B @ A, in
    float16. Trained at r=16 it is 19.6 MB in float32; at rank 8 in float16 it is 4.9 MB. The eval in the model card
    is run on this shipped adapter."""
    import torch
    from safetensors.torch import load_file, save_file

    config = json.loads((folder / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    out: dict[str, torch.Tensor] = {}
    for key_a in [k for k in tensors if "lora_A" in k]:
        key_b = key_a.replace("lora_A", "lora_B")
        u, s, vh = torch.linalg.svd(tensors[key_b].float() @ tensors[key_a].float(), full_matrices=False)
        root = s[:rank].sqrt()
        out[key_b] = (u[:, :rank] * root).half().contiguous()
        out[key_a] = (root[:, None] * vh[:rank]).half().contiguous()
    save_file(out, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config.update(r=rank, lora_alpha=int(scale * rank))
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ship-rank", type=int, default=8, help="rank of the shipped (SVD-truncated) adapter")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--accum", type=int, default=4, help="sequences per optimizer step")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--targets", nargs="+", default=list(TARGET_MODULES))
    parser.add_argument("--val-fraction", type=float, default=0.08)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--bf16", action=argparse.BooleanOptionalAction, default=True, help="bfloat16 autocast (weights stay float32)"
    )
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    args.out = args.out if args.out.is_absolute() else (Path.cwd() / args.out)
    args.history_budget = LLMSettings().history_token_budget
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Set before torch loads OpenMP: spinning worker threads slow a shared 2-core machine down up to 10x.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backend.engines.hf_llm import SMOLLM2_PACKAGE, convert_packaged_smollm2

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    base_path = convert_packaged_smollm2(Settings().cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True)

    dialogues = load_dialogues(args.data)
    train_dialogues, val_dialogues = split_dialogues(dialogues, args.val_fraction, args.seed)
    train_set = build_examples(train_dialogues, tokenizer, args.history_budget)
    val_set = build_examples(val_dialogues, tokenizer, args.history_budget)
    n_replies = sum(1 for d in dialogues for m in d["messages"] if m["role"] == "assistant")
    print(
        f"{len(dialogues)} dialogues ({n_replies} replies): train {len(train_dialogues)} dialogues -> "
        f"{len(train_set)} sequences, {sum(len(e.input_ids) for e in train_set)} tokens "
        f"({sum(e.n_targets for e in train_set)} target); "
        f"val {len(val_dialogues)} dialogues -> {len(val_set)} sequences"
    )

    model: Any = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32, local_files_only=True)
    lora = LoraConfig(
        r=args.rank,
        lora_alpha=args.alpha,
        lora_dropout=args.dropout,
        target_modules=list(args.targets),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    base_val_loss = mean_loss(model, val_set, args.bf16)  # LoRA B starts at zero: this is the base model
    print(f"trainable parameters: {trainable:,}; base model val loss {base_val_loss:.4f}")

    logs = train(model, train_set, val_set, args)
    total_seconds = time.perf_counter() - started

    args.out.mkdir(parents=True, exist_ok=True)
    readme = args.out / "README.md"
    # Name the base the way the service's config does, not by this machine's cache path.
    model.peft_config["default"].base_model_name_or_path = SMOLLM2_PACKAGE
    model.save_pretrained(str(args.out))
    shrink_adapter(args.out, args.ship_rank)
    card = model_card(
        args=args,
        dialogues=dialogues,
        val_dialogues=val_dialogues,
        train_set=train_set,
        val_set=val_set,
        n_replies=n_replies,
        base_val_loss=base_val_loss,
        logs=logs,
        trainable=trainable,
        total_seconds=total_seconds,
    )
    readme.write_text(card, encoding="utf-8")
    print(f"saved adapter and model card to {args.out} in {total_seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
