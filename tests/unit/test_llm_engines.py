"""The LLM engines (transformers, CTranslate2, llama.cpp) on a tiny random Llama (SmolLM2 tokenizer, 2 layers):
LoRA merging, streaming, cancellation, prompt-cache reuse and greedy parity between engines. Builds in seconds."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from backend.config import LLMSettings, default_cache_dir
from backend.engines.chat_tokenizer import ChatTokenizer
from backend.engines.ct2_llm import CT2LLM, ct2_cache_dir
from backend.engines.gguf_export import gguf_cache_dir
from backend.engines.hf_llm import SMOLLM2_CACHE_NAME, TransformersLLM
from backend.engines.llamacpp_llm import LlamaCppLLM
from backend.engines.protocols import ChatMessage

TOKENIZER_SOURCE = default_cache_dir() / SMOLLM2_CACHE_NAME
MESSAGES = [ChatMessage("system", "You are kind."), ChatMessage("user", "[user sounds: fear, 0.80] I am worried.")]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not (TOKENIZER_SOURCE / "tokenizer.json").exists():
        pytest.fail(f"{TOKENIZER_SOURCE} missing: run `python -m scripts.prepare_models` (make test does)")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("tiny-llm")
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_SOURCE)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    lora = get_peft_model(
        model,
        LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
        ),
    )
    lora.save_pretrained(root / "adapter")
    return root / "base", root / "adapter"


def settings_for(base: Path, adapter: Path | None, **extra: object) -> LLMSettings:
    values: dict[str, object] = {"repetition_penalty": 1.0, **extra}
    return LLMSettings(model=str(base), adapter_path=str(adapter) if adapter else None, device="cpu", **values)  # type: ignore[arg-type]


def generate(engine: TransformersLLM | CT2LLM, tokens: int = 12) -> str:
    return "".join(engine.stream(MESSAGES, tokens, threading.Event()))


def test_lora_adapter_changes_the_output(tiny_model: tuple[Path, Path], tmp_path: Path) -> None:
    base, adapter = tiny_model
    with_lora = generate(TransformersLLM(settings_for(base, adapter), tmp_path))
    without = generate(TransformersLLM(settings_for(base, None), tmp_path))
    assert with_lora and without and with_lora != without


def test_missing_adapter_fails_loudly(tiny_model: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json"):
        TransformersLLM(settings_for(tiny_model[0], tmp_path / "nope"), tmp_path)


def test_ctranslate2_matches_transformers_greedy(tiny_model: tuple[Path, Path], tmp_path: Path) -> None:
    base, adapter = tiny_model
    hf = generate(TransformersLLM(settings_for(base, adapter), tmp_path), 16)
    ct2 = CT2LLM(settings_for(base, adapter), tmp_path)
    assert generate(ct2, 16) == hf
    assert ct2_cache_dir(settings_for(base, adapter), tmp_path, "float32").exists()  # converted once, cached


@pytest.mark.parametrize("engine_name", ["transformers", "ctranslate2", "llamacpp"])
def test_cancel_stops_generation(engine_name: str, tiny_model: tuple[Path, Path], tmp_path: Path) -> None:
    if engine_name == "llamacpp":
        engine: Any = llamacpp(*tiny_model, tmp_path, quant="Q8_0")
    else:
        engine = (TransformersLLM if engine_name == "transformers" else CT2LLM)(settings_for(*tiny_model), tmp_path)
    cancel = threading.Event()
    pieces = []
    for piece in engine.stream(MESSAGES, 50, cancel):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert len(pieces) == 3


def llamacpp(base: Path, adapter: Path | None, tmp_path: Path, quant: str = "F32", **extra: object) -> LlamaCppLLM:
    return LlamaCppLLM(settings_for(base, adapter, gguf_quant=quant, **extra), tmp_path, threads=1)


@pytest.mark.parametrize("penalty", [1.0, 1.15])
def test_llamacpp_matches_transformers_greedy(tiny_model: tuple[Path, Path], tmp_path: Path, penalty: float) -> None:
    """Unquantised GGUF: the same merged weights, the same prompt ids, our own greedy + penalty rule on top."""
    base, adapter = tiny_model
    hf = "".join(
        TransformersLLM(settings_for(base, adapter, repetition_penalty=penalty), tmp_path).stream(
            MESSAGES, 24, threading.Event()
        )
    )
    engine = llamacpp(base, adapter, tmp_path, repetition_penalty=penalty)
    assert "".join(engine.stream(MESSAGES, 24, threading.Event())) == hf
    assert (gguf_cache_dir(settings_for(base, adapter), tmp_path, "F32") / "model.gguf").exists()


def test_llamacpp_reuses_the_system_prompt_cache(tiny_model: tuple[Path, Path], tmp_path: Path) -> None:
    engine = llamacpp(*tiny_model, tmp_path, quant="Q8_0")
    first = "".join(engine.stream(MESSAGES, 12, threading.Event()))
    assert engine.last_reused_tokens == 0
    other = [MESSAGES[0], ChatMessage("user", "Something else entirely.")]
    "".join(engine.stream(other, 12, threading.Event()))
    system_tokens = len(engine.tokenizer.prompt_ids(MESSAGES[:1]))
    assert engine.last_reused_tokens >= system_tokens - 3  # the persona's KV state was kept across turns
    # Reusing cached state must not change the answer.
    assert "".join(engine.stream(MESSAGES, 12, threading.Event())) == first


def test_chat_tokenizer_renders_like_transformers(tiny_model: tuple[Path, Path]) -> None:
    from transformers import AutoTokenizer

    from backend.engines.hf_llm import prompt_ids

    base = tiny_model[0]
    history = [*MESSAGES, ChatMessage("assistant", "Okay — tell me more."), ChatMessage("user", "émigré 🙂 ok")]
    assert ChatTokenizer(base).prompt_ids(history) == prompt_ids(AutoTokenizer.from_pretrained(base), history)


@pytest.mark.parametrize("batch_decode", [True, False])
def test_llamacpp_concurrent_replies_match_one_at_a_time(
    tiny_model: tuple[Path, Path], tmp_path: Path, batch_decode: bool
) -> None:
    """Replies decoded together (one batch, or round robin) are the replies each would get alone (no cross-talk)."""
    from concurrent.futures import ThreadPoolExecutor

    engine = llamacpp(*tiny_model, tmp_path, batch_decode=batch_decode)
    chats = [[MESSAGES[0], ChatMessage("user", text)] for text in ("I am worried.", "I got the job!", "Help me plan.")]
    alone = ["".join(engine.stream(chat, 20, threading.Event())) for chat in chats]
    with ThreadPoolExecutor(len(chats)) as pool:
        together = list(pool.map(lambda chat: "".join(engine.stream(chat, 20, threading.Event())), chats * 2))
    assert together == alone * 2
    engine.close()
