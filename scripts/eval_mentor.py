"""Evaluate the ClarityMentor LoRA against the plain base model on held-out prompts.

    python -m scripts.eval_mentor [--adapter models/claritymentor-lora/final] [--examples 4]

Both models are loaded the way the service loads them (``TransformersLLM``: float32 on CPU, the adapter merged with
``merge_and_unload``), get prompts built by ``build_messages`` and decode as the service does: greedy, repetition
penalty on the generated tokens, at most ``llm.max_response_tokens`` new tokens, stop at end-of-turn.
The 48 prompts in ``scripts/data/mentor_eval_prompts.jsonl`` are never trained on.

Writes the base-vs-LoRA table (plus a few example replies) to ``<adapter>/eval.md`` and into the evaluation
section of ``<adapter>/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from backend.config import REPO_ROOT, LLMSettings, Settings
from backend.engines.protocols import ChatMessage
from backend.models.emotion import as_emotion
from backend.services.prompting import build_messages

PROMPTS = REPO_ROOT / "scripts" / "data" / "mentor_eval_prompts.jsonl"
DIALOGUES = REPO_ROOT / "scripts" / "data" / "mentor_dialogues.jsonl"
ADAPTER = REPO_ROOT / "models" / "claritymentor-lora" / "final"
EVAL_START = "<!-- eval:start -->"
EVAL_END = "<!-- eval:end -->"
EMOTION_MIN_CONFIDENCE = 0.5

# "as an AI", "I'm an AI", "as a chatbot" and their padded forms ("as a caring and empathetic AI"), plus model names.
PERSONA_BREAK = re.compile(
    r"\b(?:as|i'm|i am) an? (?:[a-z-]+ ){0,3}(?:ai|a\.i\.|chatbot|bot|assistant)\b"
    r"|\blanguage model|smollm|hugging ?face",
    re.IGNORECASE,
)
# Words that name (or directly acknowledge) each emotion. A trailing "*" matches any ending.
# fmt: off
EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "anger": (
        "anger", "angry", "angri*", "furious", "fury", "frustrat*", "mad", "annoy*", "irritat*", "resent*",
        "unfair*", "outrag*", "infuriat*", "livid", "rage", "enrag*", "fed up", "upset*", "betray*", "bitter*",
        "disrespect*", "insult*", "aggravat*", "maddening", "exasperat*",
    ),
    "disgust": (
        "disgust*", "gross", "grossed", "repuls*", "revolt*", "sicken*", "sick", "nauseat*", "vile", "appall*",
        "horrif*", "awful", "unacceptable", "distaste*", "repugn*", "uncomfortable", "unethical", "wrong",
        "not okay", "not ok", "not right", "cruel*", "yuck", "disturb*", "troubling",
    ),
    "fear": (
        "afraid", "scared", "scary", "scaring", "anxious*", "anxiety", "worry*", "worri*", "nervous*", "fright*",
        "stress*", "overwhelm*", "dread*", "fear*", "panic*", "terrif*", "uneasy", "tense", "tension", "on edge",
        "daunting", "intimidat*", "apprehensi*", "alarm*", "nerve*", "unsettl*", "shaken", "shaky",
    ),
    "joy": (
        "happy", "happi*", "glad", "joy*", "excit*", "thrill*", "delight*", "proud", "pride", "congrat*",
        "celebrat*", "wonderful", "amazing", "fantastic", "great news", "good news", "brilliant", "awesome",
        "elated", "overjoyed", "ecstatic", "well done", "relief", "relieved", "love", "lovely", "grateful",
        "cheer*", "uplift*",
    ),
    "sadness": (
        "sad", "sadder", "saddest", "sadness", "sorrow*", "grief", "griev*", "heartbreak*", "heartbroken", "hurt*",
        "painful", "pain", "loss", "lonely", "loneliness", "alone", "miss", "missing", "heavy", "disappoint*",
        "devastat*", "upset*", "tears", "cry*", "gutted", "hopeless*", "sorry", "mourn*", "discourag*", "defeat*",
        "drain*", "bittersweet", "heartache", "weigh*", "empty", "numb",
    ),
    "surprise": (
        "surpris*", "shock*", "unexpect*", "stun*", "astonish*", "amaz*", "blindsid*", "caught off guard",
        "out of nowhere", "out of the blue", "sudden*", "wow", "whoa", "didn't see it coming", "can't believe",
        "startl*", "unbelievable", "out of the ordinary", "a lot to take in", "wild", "off guard",
        "out of left field", "big news", "disorient*",
    ),
}
# fmt: on


def lexicon_pattern(words: Sequence[str]) -> re.Pattern[str]:
    parts = [re.escape(w[:-1]) + r"\w*" if w.endswith("*") else re.escape(w) for w in words]
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b", re.IGNORECASE)


EMOTION_PATTERNS = {emotion: lexicon_pattern(words) for emotion, words in EMOTION_WORDS.items()}
SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|\n+")
TERMINAL = re.compile(r"[.!?…][\"'”’)\]]*$")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    n_tokens: int
    hit_limit: bool


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    higher_is_better: bool
    fmt: str
    compute: Callable[[list[dict[str, Any]], list[Reply]], float]


def normalize(text: str) -> str:
    return text.replace("’", "'").replace("‘", "'")


def count_sentences(text: str) -> int:
    return sum(1 for piece in SENTENCE_SPLIT.split(text.strip()) if re.search(r"[A-Za-z0-9]", piece))


def words(text: str) -> list[str]:
    return WORD.findall(normalize(text).lower())


def is_degenerate(reply: Reply) -> bool:
    """A repeated 4-gram, distinct-2 below 0.5, an empty reply, or cut off mid-sentence at the token limit."""
    tokens = words(reply.text)
    if not tokens:
        return True
    four = list(zip(tokens, tokens[1:], tokens[2:], tokens[3:], strict=False))
    if len(set(four)) < len(four):
        return True
    two = list(pairwise(tokens))
    if two and len(set(two)) / len(two) < 0.5:
        return True
    return reply.hit_limit and not TERMINAL.search(reply.text.strip())


def names_emotion(text: str, emotion: str) -> bool:
    pattern = EMOTION_PATTERNS.get(emotion)
    return bool(pattern and pattern.search(normalize(text)))


def emotion_given(prompt: dict[str, Any]) -> bool:
    emotion = prompt.get("emotion") or {}
    return (
        emotion.get("primary_emotion", "neutral") != "neutral"
        and float(emotion.get("confidence", 0.0)) >= EMOTION_MIN_CONFIDENCE
    )


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def emotion_named_share(prompts: list[dict[str, Any]], replies: list[Reply]) -> float:
    hits = [
        float(names_emotion(r.text, p["emotion"]["primary_emotion"]))
        for p, r in zip(prompts, replies, strict=True)
        if emotion_given(p)
    ]
    return mean(hits)


METRICS: tuple[Metric, ...] = (
    Metric("mean sentences per reply", False, "{:.2f}", lambda _p, rs: mean([count_sentences(r.text) for r in rs])),
    Metric(
        "share with <= 3 sentences", True, "{:.0%}", lambda _p, rs: mean([count_sentences(r.text) <= 3 for r in rs])
    ),
    Metric("mean questions per reply", False, "{:.2f}", lambda _p, rs: mean([r.text.count("?") for r in rs])),
    Metric("share with <= 1 question", True, "{:.0%}", lambda _p, rs: mean([r.text.count("?") <= 1 for r in rs])),
    Metric(
        "persona breaks (share)",
        False,
        "{:.0%}",
        lambda _p, rs: mean([bool(PERSONA_BREAK.search(normalize(r.text))) for r in rs]),
    ),
    Metric("repetition / degeneration (share)", False, "{:.0%}", lambda _p, rs: mean([is_degenerate(r) for r in rs])),
    Metric("emotion named when given (share)", True, "{:.0%}", emotion_named_share),
)


def load_prompts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def generate(engine: Any, messages: Sequence[ChatMessage], max_new_tokens: int, penalty: float) -> Reply:
    """The service's decoding loop (``TransformersLLM.stream`` at temperature 0), also reporting the stop reason."""
    import torch
    from transformers import DynamicCache

    from backend.engines.hf_llm import eos_ids, prompt_ids

    model, tokenizer = engine.model, engine.tokenizer
    stop = eos_ids(tokenizer, model.generation_config)
    next_input = torch.tensor([prompt_ids(tokenizer, messages)], device=engine.device)
    generated: list[int] = []
    cache = DynamicCache()
    hit_limit = True
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            logits = model(input_ids=next_input, use_cache=True, **{engine._cache_kw: cache}).logits[0, -1].float()
            if penalty > 1.0 and generated:
                seen = torch.tensor(sorted(set(generated)), device=logits.device)
                picked = logits[seen]
                logits[seen] = torch.where(picked > 0, picked / penalty, picked * penalty)
            token = int(torch.argmax(logits).item())
            if token in stop:
                hit_limit = False
                break
            generated.append(token)
            next_input = torch.tensor([[token]], device=engine.device)
    return Reply(tokenizer.decode(generated, skip_special_tokens=True).strip(), len(generated), hit_limit)


def run_model(
    label: str,
    settings: LLMSettings,
    cache_dir: Path,
    prompts: list[dict[str, Any]],
    history_budget: int,
    threads: int,
) -> tuple[list[Reply], float]:
    from tqdm import tqdm  # type: ignore[import-untyped]

    from backend.engines.hf_llm import TransformersLLM

    engine = TransformersLLM(settings, cache_dir, threads)
    replies: list[Reply] = []
    started = time.perf_counter()
    for prompt in tqdm(prompts, desc=label, unit="prompt", dynamic_ncols=True):
        messages = build_messages(
            [],
            prompt["text"],
            as_emotion(prompt.get("emotion")),
            count_tokens=engine.count_tokens,
            history_token_budget=history_budget,
        )
        replies.append(generate(engine, messages, settings.max_response_tokens, settings.repetition_penalty))
    return replies, time.perf_counter() - started


def run_llamacpp(
    settings: LLMSettings, cache_dir: Path, prompts: list[dict[str, Any]], history_budget: int
) -> tuple[list[Reply], float]:
    """The served engine: LlamaCppLLM.stream exactly as the server calls it (GGUF of the merged LoRA)."""
    import threading

    from tqdm import tqdm

    from backend.engines.llamacpp_llm import LlamaCppLLM

    engine = LlamaCppLLM(settings, cache_dir)
    replies: list[Reply] = []
    started = time.perf_counter()
    for prompt in tqdm(prompts, desc=f"llama.cpp {settings.gguf_quant}", unit="prompt", dynamic_ncols=True):
        messages = build_messages(
            [],
            prompt["text"],
            as_emotion(prompt.get("emotion")),
            count_tokens=engine.count_tokens,
            history_token_budget=history_budget,
        )
        text = "".join(engine.stream(messages, settings.max_response_tokens, threading.Event())).strip()
        n = engine.count_tokens(text)
        replies.append(Reply(text, n, hit_limit=n >= settings.max_response_tokens - 1))
    return replies, time.perf_counter() - started


def compare_engines(threads: int, prompts_path: Path) -> None:
    """The LoRA model on transformers (reference) and on llama.cpp (served), metric by metric."""
    settings = Settings()
    prompts = load_prompts(prompts_path)
    budget = settings.llm.history_token_budget
    llm = settings.llm.model_copy(update={"device": "cpu"})
    columns = {"transformers fp32": run_model("transformers", llm, settings.cache_dir, prompts, budget, threads)}
    for quant in ("Q8_0", "F16"):
        quant_settings = llm.model_copy(update={"gguf_quant": quant})
        columns[f"llama.cpp {quant}"] = run_llamacpp(quant_settings, settings.cache_dir, prompts, budget)
    header = "| metric | " + " | ".join(columns) + " |"
    lines = [header, "|---|" + "---|" * len(columns)]
    for metric in METRICS:
        cells = [metric.fmt.format(metric.compute(prompts, replies)) for replies, _ in columns.values()]
        lines.append(f"| {metric.name} | " + " | ".join(cells) + " |")
    lines.append("| generation time (s) | " + " | ".join(f"{s:.0f}" for _, s in columns.values()) + " |")
    reference = columns["transformers fp32"][0]
    for name, (replies, _) in columns.items():
        same = sum(a.text == b.text for a, b in zip(reference, replies, strict=True))
        lines.append(f"| identical to transformers ({name}) | {same}/{len(prompts)} |" + " |" * (len(columns) - 1))
    print("\n".join(lines))


def reference_replies(path: Path) -> tuple[list[dict[str, Any]], list[Reply]]:
    """The first reply of every training dialogue, with its user turn: what the data teaches for a single turn."""
    prompts: list[dict[str, Any]] = []
    replies: list[Reply] = []
    for dialogue in load_prompts(path):
        messages = dialogue["messages"]
        if len(messages) >= 2 and messages[0]["role"] == "user" and messages[1]["role"] == "assistant":
            prompts.append({"text": messages[0]["content"], "emotion": messages[0].get("emotion") or {}})
            replies.append(Reply(messages[1]["content"], 0, hit_limit=False))
    return prompts, replies


def metric_table(
    prompts: list[dict[str, Any]],
    base: list[Reply],
    lora: list[Reply],
    reference: tuple[list[dict[str, Any]], list[Reply]] | None = None,
) -> tuple[str, list[str]]:
    """Markdown table base vs LoRA (optionally with the training data's first replies for reference)."""
    extra = " training data, first replies |" if reference else ""
    rows = [f"| metric | base | LoRA | better |{extra}", "|---|---|---|---|" + ("---|" if reference else "")]
    not_better: list[str] = []
    for metric in METRICS:
        b, lo = metric.compute(prompts, base), metric.compute(prompts, lora)
        better = lo > b if metric.higher_is_better else lo < b
        tied_at_best = lo == b and lo == (1.0 if metric.higher_is_better else 0.0) and metric.fmt.endswith("%}")
        verdict = "yes" if better else ("tie (at best)" if tied_at_best else "no")
        if not (better or tied_at_best):
            not_better.append(metric.name)
        arrow = "↑" if metric.higher_is_better else "↓"
        ref = f" {metric.fmt.format(metric.compute(*reference))} |" if reference else ""
        rows.append(f"| {metric.name} {arrow} | {metric.fmt.format(b)} | {metric.fmt.format(lo)} | {verdict} |{ref}")
    ref_words = f" {mean([len(words(r.text)) for r in reference[1]]):.1f} |" if reference else ""
    rows.append(
        f"| mean words per reply | {mean([len(words(r.text)) for r in base]):.1f} | "
        f"{mean([len(words(r.text)) for r in lora]):.1f} | (info) |{ref_words}"
    )
    return "\n".join(rows), not_better


def shown(n_prompts: int, n: int) -> list[int]:
    """Indices of ``n`` prompts spread over the file (so several topics show)."""
    if n <= 0:
        return []
    step = max(1, n_prompts // n)
    return list(range(0, n_prompts, step))[:n]


def replies_markdown(prompts: list[dict[str, Any]], base: list[Reply], lora: list[Reply], indices: list[int]) -> str:
    blocks = []
    for i in indices:
        p, emotion = prompts[i], prompts[i]["emotion"]
        blocks.append(
            f"**{p['id']}** ({p['topic']}, {emotion['primary_emotion']} {emotion['confidence']:.2f}): {p['text']}\n\n"
            f"- base: {' '.join(base[i].text.split())}\n- LoRA: {' '.join(lora[i].text.split())}"
        )
    return "\n\n".join(blocks)


def print_side_by_side(prompts: list[dict[str, Any]], base: list[Reply], lora: list[Reply], indices: list[int]) -> None:
    width = 58
    for i in indices:
        p = prompts[i]
        print(f"\n[{p['id']}] {p['emotion']['primary_emotion']}: {p['text']}")
        left = textwrap.wrap(base[i].text, width) or [""]
        right = textwrap.wrap(lora[i].text, width) or [""]
        print(f"  {'BASE':<{width}} | LoRA")
        for row in range(max(len(left), len(right))):
            a = left[row] if row < len(left) else ""
            b = right[row] if row < len(right) else ""
            print(f"  {a:<{width}} | {b}")


def update_model_card(readme: Path, section: str) -> bool:
    if not readme.exists():
        return False
    text = readme.read_text(encoding="utf-8")
    if EVAL_START not in text or EVAL_END not in text:
        return False
    head, rest = text.split(EVAL_START, 1)
    tail = rest.split(EVAL_END, 1)[1]
    readme.write_text(f"{head}{EVAL_START}\n{section}\n{EVAL_END}{tail}", encoding="utf-8")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", type=Path, default=ADAPTER)
    parser.add_argument("--prompts", type=Path, default=PROMPTS)
    parser.add_argument(
        "--reference", type=Path, default=DIALOGUES, help="training dialogues, scored as a reference column"
    )
    parser.add_argument("--examples", type=int, default=4, help="example replies to show side by side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--compare-engines", action="store_true", help="the served LoRA on transformers vs llama.cpp (Q8_0, F16)"
    )
    args = parser.parse_args()
    if args.compare_engines:
        compare_engines(args.threads, args.prompts)
        return
    adapter: Path = args.adapter if args.adapter.is_absolute() else Path.cwd() / args.adapter
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Set before torch loads OpenMP: spinning worker threads slow a shared 2-core machine down up to 10x.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not (adapter / "adapter_config.json").exists():
        raise SystemExit(f"no adapter at {adapter}: run python -m scripts.train_lora first")

    settings = Settings()
    base_settings = settings.llm.model_copy(update={"adapter_path": None, "device": "cpu"})
    lora_settings = base_settings.model_copy(update={"adapter_path": str(adapter)})
    prompts = load_prompts(args.prompts)
    budget = settings.llm.history_token_budget
    base, base_seconds = run_model("base", base_settings, settings.cache_dir, prompts, budget, args.threads)
    lora, lora_seconds = run_model("base+LoRA", lora_settings, settings.cache_dir, prompts, budget, args.threads)

    reference = reference_replies(args.reference) if args.reference.exists() else None
    table, not_better = metric_table(prompts, base, lora, reference)
    verdict = "yes" if not not_better else "no, not on: " + ", ".join(not_better)
    n_emotion = sum(emotion_given(p) for p in prompts)
    section = (
        f"{len(prompts)} held-out prompts (`{args.prompts.name}`, never trained on), single turn, decoded as served: "
        f"greedy, repetition penalty {base_settings.repetition_penalty}, at most {base_settings.max_response_tokens} "
        f'new tokens. "Emotion named" counts the {n_emotion} prompts with a non-neutral emotion at confidence >= '
        f"{EMOTION_MIN_CONFIDENCE}; degeneration = a repeated 4-gram, distinct-2 < 0.5 or cut off mid-sentence at the "
        f"token limit. Generation time on CPU ({args.threads} threads): base {base_seconds:.0f} s, "
        f"LoRA {lora_seconds:.0f} s."
        + (
            f" The last column scores the first reply of each of the {len(reference[1])} training dialogues: "
            "the style the adapter is taught, not a model."
            if reference
            else ""
        )
        + f"\n\n{table}\n\n"
        f"LoRA better than the base on every metric: {verdict}."
    )
    indices = shown(len(prompts), args.examples)
    examples = replies_markdown(prompts, base, lora, indices)
    everything = replies_markdown(prompts, base, lora, list(range(len(prompts))))
    (adapter / "eval.md").write_text(
        f"# ClarityMentor LoRA: evaluation\n\n{section}\n\n## Example replies\n\n{examples}\n\n"
        f"## All replies\n\n<details>\n<summary>{len(prompts)} prompts, base and LoRA</summary>\n\n{everything}\n\n"
        "</details>\n",
        encoding="utf-8",
    )
    carded = update_model_card(adapter / "README.md", section)
    print()
    print(table)
    print_side_by_side(prompts, base, lora, indices)
    print(f"\nLoRA better than the base on every metric: {verdict}")
    print(f"wrote {adapter / 'eval.md'}" + (" and the model card's evaluation section" if carded else ""))


if __name__ == "__main__":
    main()
