"""CTranslate2 causal LM: the same model and LoRA as the transformers engine, merged and converted once into the
cache (keyed by the base model, the adapter's bytes and the compute type), then served by ctranslate2.Generator."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from backend.config import LLMSettings
from backend.engines.chat_tokenizer import IncrementalDecoder
from backend.engines.devices import resolve_compute_type, resolve_device
from backend.engines.hf_llm import (
    display_name,
    eos_ids,
    load_merged,
    merged_cache_dir,
    prompt_ids,
)
from backend.engines.protocols import ChatMessage


def ct2_cache_dir(settings: LLMSettings, cache_dir: Path, compute_type: str) -> Path:
    return merged_cache_dir(settings, cache_dir, "ct2-llm", compute_type)


def build_ct2(settings: LLMSettings, cache_dir: Path, compute_type: str) -> Path:
    """Merge the LoRA into the base, convert to CTranslate2 (idempotent: reuses a finished folder)."""
    from ctranslate2.converters import TransformersConverter

    target = ct2_cache_dir(settings, cache_dir, compute_type)
    if (target / "model.bin").exists() and (target / "tokenizer" / "tokenizer.json").exists():
        return target
    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    tokenizer, model = load_merged(settings, cache_dir)
    merged = work / "merged"
    model.save_pretrained(merged)
    tokenizer.save_pretrained(merged)
    TransformersConverter(str(merged)).convert(str(work / "model"), quantization=compute_type, force=True)
    tokenizer.save_pretrained(work / "model" / "tokenizer")
    model.generation_config.save_pretrained(work / "model" / "tokenizer")
    shutil.rmtree(target, ignore_errors=True)
    (work / "model").replace(target)
    shutil.rmtree(work, ignore_errors=True)
    return target


class CT2LLM:
    def __init__(self, settings: LLMSettings, cache_dir: Path, threads: int = 2) -> None:
        import ctranslate2
        from transformers import AutoTokenizer, GenerationConfig

        self.device = resolve_device(settings.device)
        self.compute_type = resolve_compute_type(
            settings.compute_type, self.device, cpu_default="float32", cuda_default="bfloat16"
        )
        path = build_ct2(settings, cache_dir, self.compute_type)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(path / "tokenizer", local_files_only=True)
        self._generator = ctranslate2.Generator(
            str(path), device=self.device, compute_type=self.compute_type, intra_threads=threads
        )
        self._settings = settings
        self._eos = eos_ids(self.tokenizer, GenerationConfig.from_pretrained(path / "tokenizer"))
        self.name = display_name(settings) + " (CTranslate2)"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def stream(self, messages: Sequence[ChatMessage], max_new_tokens: int, cancel: threading.Event) -> Iterator[str]:
        tokens = self.tokenizer.convert_ids_to_tokens(prompt_ids(self.tokenizer, messages))
        temperature = self._settings.temperature
        steps = self._generator.generate_tokens(
            tokens,
            max_length=max_new_tokens,
            sampling_topk=1 if temperature == 0 else 50,
            sampling_temperature=temperature or 1.0,
            repetition_penalty=self._settings.repetition_penalty,
            end_token=sorted(self._eos),
        )
        decoder = IncrementalDecoder(self.tokenizer)
        try:
            for step in steps:
                if cancel.is_set() or step.token_id in self._eos:
                    return
                if piece := decoder.push(step.token_id):
                    yield piece
        finally:
            steps.close()  # stops generation in CTranslate2's worker
