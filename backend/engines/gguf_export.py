"""Write a Llama-architecture Hugging Face model (our LoRA already merged) as a GGUF file for llama.cpp.

Set-up time only (imports torch through ``load_merged``); the server just opens the result. The writer covers the
Llama family that SmolLM2 belongs to: tensors are renamed to llama.cpp's names, the query/key projections are
re-ordered into llama.cpp's rotary layout, norms stay float32 and the matrices are stored as ``Q8_0`` (default),
``F16``, ``F32`` or ``Q4_1``. The tokenizer goes in as a byte-level BPE vocabulary (``gpt2``), but the server
tokenizes with the model's own ``tokenizer.json`` and hands llama.cpp token ids, so the two never have to agree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.config import LLMSettings
from backend.engines.chat_tokenizer import chat_template
from backend.engines.hf_llm import load_merged, merged_cache_dir

QUANT_TYPES = ("Q8_0", "Q4_1", "F16", "F32")
_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
GGUF_FILE = "model.gguf"


def gguf_cache_dir(settings: LLMSettings, cache_dir: Path, quant: str) -> Path:
    """One folder per (base model, adapter bytes, quantisation)."""
    return merged_cache_dir(settings, cache_dir, "llamacpp", f"{quant}|gguf-v1")


def rotary_permute(weight: npt.NDArray[np.float32], heads: int) -> npt.NDArray[np.float32]:
    """HF stores each head's rotary halves as [first half | second half]; llama.cpp interleaves them in pairs."""
    rows = weight.shape[0]
    return np.ascontiguousarray(
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
    )


def gguf_tensor_name(hf_name: str) -> str | None:
    """llama.cpp's name for a HF Llama parameter; None for buffers it does not need (rotary caches)."""
    name = hf_name.removeprefix("model.")
    if name == "embed_tokens.weight":
        return "token_embd.weight"
    if name == "norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    if name.startswith("layers."):
        _, index, rest = name.split(".", 2)
        module, _, kind = rest.rpartition(".")
        if module in _LAYER_NAMES:
            return f"blk.{index}.{_LAYER_NAMES[module]}.{kind}"
    return None


def _tokenizer_metadata(writer: Any, folder: Path) -> None:
    import gguf

    tok = json.loads((folder / "tokenizer.json").read_text())
    model = tok["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"only byte-level BPE tokenizers are supported for GGUF export, not {model.get('type')}")
    vocab: dict[str, int] = dict(model["vocab"])
    added = {t["content"]: t for t in tok.get("added_tokens", [])}
    for content, token in added.items():
        vocab.setdefault(content, int(token["id"]))
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for content, index in vocab.items():
        tokens[index] = content
        special = added.get(content, {}).get("special", False)
        types[index] = gguf.TokenType.CONTROL if special else gguf.TokenType.NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    for key, setter in (("bos_token", writer.add_bos_token_id), ("eos_token", writer.add_eos_token_id)):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if value in vocab:
            setter(vocab[value])
    writer.add_add_bos_token(False)
    writer.add_chat_template(chat_template(folder))


def write_gguf(model: Any, tokenizer_folder: Path, out: Path, quant: str = "Q8_0") -> None:
    """Write ``model`` (a transformers LlamaForCausalLM) to ``out``."""
    import gguf

    if quant not in QUANT_TYPES:
        raise ValueError(f"unknown GGUF quantisation {quant!r}; expected one of {QUANT_TYPES}")
    cfg = model.config
    if cfg.model_type != "llama":
        raise ValueError(f"GGUF export supports Llama-architecture models, not {cfg.model_type!r}")
    qtype = getattr(gguf.GGMLQuantizationType, quant)
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name("claritymentor")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(cfg.hidden_size // heads)
    writer.add_rope_freq_base(float(getattr(cfg, "rope_theta", None) or cfg.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(getattr(gguf.LlamaFileType, "ALL_F32" if quant == "F32" else "MOSTLY_" + quant))
    _tokenizer_metadata(writer, tokenizer_folder)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        name = gguf_tensor_name(hf_name)
        if name is None or (tied and name == "output.weight"):
            continue
        data = tensor.detach().float().cpu().numpy()
        if name.endswith("attn_q.weight"):
            data = rotary_permute(data, heads)
        elif name.endswith("attn_k.weight"):
            data = rotary_permute(data, kv_heads)
        if data.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32 or data.shape[-1] % 32:
            writer.add_tensor(name, data.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def ensure_gguf(settings: LLMSettings, cache_dir: Path) -> Path:
    """The prepared folder for ``settings`` (built now, with torch, only if set-up has not done it yet)."""
    target = gguf_cache_dir(settings, cache_dir, settings.gguf_quant)
    if (target / GGUF_FILE).exists() and (target / "tokenizer.json").exists():
        return target
    return build_gguf(settings, cache_dir, settings.gguf_quant)


def build_gguf(settings: LLMSettings, cache_dir: Path, quant: str = "Q8_0") -> Path:
    """Merge the LoRA into the base and export GGUF + tokenizer files once (idempotent; reuses a finished folder)."""
    target = gguf_cache_dir(settings, cache_dir, quant)
    if (target / GGUF_FILE).exists() and (target / "tokenizer.json").exists():
        return target
    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tokenizer, model = load_merged(settings, cache_dir)
    tokenizer.save_pretrained(work)
    model.generation_config.save_pretrained(work)
    write_gguf(model, work, work / GGUF_FILE, quant)
    shutil.rmtree(target, ignore_errors=True)
    work.replace(target)
    return target
