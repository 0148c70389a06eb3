"""Optional GPU check of the LLM engine (device: auto -> CUDA, bfloat16, LoRA merge, streaming, cancellation).

    python -m scripts.bench.gpu_check --model-dir DIR

DIR holds SmolLM2-135M's config and tokenizer files (no weights): the model is built with random weights of the
real size, so speeds are representative while nothing large has to travel. Run on a machine with a GPU; CI never
runs it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from backend.config import LLMSettings
from backend.engines.hf_llm import TransformersLLM
from backend.models.emotion import EmotionData
from backend.services.prompting import HistoryTurn, build_messages


def build(model_dir: Path, work: Path) -> tuple[Path, Path]:
    base = work / "base"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    model.save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, base / name)
    lora = get_peft_model(
        model,
        LoraConfig(
            r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
        ),
    )
    lora.save_pretrained(work / "adapter")
    return base, work / "adapter"


def run(device: str, base: Path, adapter: Path) -> dict[str, object]:
    settings = LLMSettings(model=str(base), adapter_path=str(adapter), device=device, temperature=0.0)  # type: ignore[arg-type]
    start = time.perf_counter()
    llm = TransformersLLM(settings, base.parent)
    load_s = time.perf_counter() - start
    messages = build_messages(
        [HistoryTurn("user", "hello")],
        "I feel really stressed about my exam tomorrow.",
        EmotionData(primary_emotion="fear", confidence=0.8),
        count_tokens=llm.count_tokens,
        history_token_budget=600,
    )
    timings = []
    for _ in range(3):
        t0 = time.perf_counter()
        first = None
        count = 0
        for _piece in llm.stream(messages, 80, threading.Event()):
            first = first or time.perf_counter() - t0
            count += 1
        timings.append((first or 0.0, count, time.perf_counter() - t0))
    cancel = threading.Event()
    seen = 0
    for _piece in llm.stream(messages, 80, cancel):
        seen += 1
        if seen == 5:
            cancel.set()
    first, count, total = timings[-1]
    return {
        "device": str(next(llm.model.parameters()).device),
        "dtype": str(next(llm.model.parameters()).dtype),
        "load_s": round(load_s, 2),
        "first_piece_ms": round(1000 * first, 1),
        "pieces": count,
        "pieces_per_s": round(count / total, 1),
        "pieces_after_cancel_at_5": seen,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base, adapter = build(args.model_dir, Path(tmp))
        results = {
            "cuda_available": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "auto": run("auto", base, adapter),
            "cpu": run("cpu", base, adapter),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
