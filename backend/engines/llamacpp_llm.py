"""llama.cpp causal LM (the CPU default): the same SmolLM2 + mentor LoRA as the transformers engine, served from a GGUF
prepared once into the cache (``scripts/prepare_models.py``).

Neither torch nor transformers is imported here: the model's own ``tokenizer.json`` and chat template (through
:class:`ChatTokenizer`) turn messages into token ids, which llama.cpp evaluates. Sampling is ours, on llama.cpp's
logits, so stop rules, the repetition penalty (over generated tokens only) and greedy decoding behave exactly as in
:class:`TransformersLLM`. The KV cache keeps the longest common prefix of the previous prompt: the persona system
prompt (the same for every session) is evaluated once, and a session's next turn reuses its whole history.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.config import LLMSettings
from backend.engines.chat_tokenizer import ChatTokenizer, IncrementalDecoder
from backend.engines.devices import resolve_device
from backend.engines.llamacpp_batch import BatchScheduler, common_prefix
from backend.engines.protocols import ChatMessage

SENTENCE_END_TOKENS = frozenset({".", "?", "!", "..."})
_WORDS = re.compile(r"[\w']+")


def pick_token(
    logits: npt.NDArray[np.float32],
    generated: Sequence[int],
    penalty: float,
    temperature: float,
    rng: np.random.Generator,
) -> int:
    """The transformers engine's rule: CTRL-style penalty on tokens already generated, then argmax or sampling."""
    if penalty > 1.0 and generated:
        seen = np.fromiter(set(generated), dtype=np.int64)
        picked = logits[seen]
        logits[seen] = np.where(picked > 0, picked / penalty, picked * penalty)
    if temperature <= 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    return int(rng.choice(len(probs), p=probs / probs.sum()))


class LlamaContext:
    """One single-sequence llama.cpp context (the end-of-turn scorer): its own KV cache, evaluated with prefix
    reuse. Not thread-safe."""

    def __init__(self, gguf: Path, *, threads: int, batch_threads: int, context_tokens: int, gpu: bool) -> None:
        from llama_cpp import Llama

        self._llama: Any = Llama(
            model_path=str(gguf),
            n_ctx=context_tokens,
            n_batch=min(512, context_tokens),
            n_threads=threads,
            n_threads_batch=batch_threads,
            n_gpu_layers=-1 if gpu else 0,
            logits_all=False,
            verbose=False,
        )
        self.n_ctx = context_tokens
        self.n_vocab = int(self._llama.n_vocab())

    def logits_after(self, tokens: Sequence[int]) -> tuple[npt.NDArray[np.float32], int]:
        """Next-token logits after ``tokens`` and how many leading tokens came from the KV cache: only what
        differs from the cached sequence is evaluated."""
        llama = self._llama
        cached = llama.input_ids[: llama.n_tokens].tolist()
        keep = min(common_prefix(cached, tokens), len(tokens) - 1)  # decode >= 1 token: fresh logits
        if not llama._ctx.kv_cache_seq_rm(-1, keep, -1):
            keep = 0
            llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        llama.n_tokens = keep
        llama.eval(list(tokens[keep:]))
        return self.last_logits(), keep

    def last_logits(self) -> npt.NDArray[np.float32]:
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self._llama.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def close(self) -> None:
        self._llama.close()


class LlamaCppLLM:
    def __init__(
        self,
        settings: LLMSettings,
        cache_dir: Path,
        threads: int = 1,
        batch_threads: int = 2,
        turn_threads: int = 1,
        *,
        gguf_dir: Path | None = None,
    ) -> None:
        from backend.engines.gguf_export import GGUF_FILE, ensure_gguf

        self.device = resolve_device(settings.device)
        self.compute_type = settings.gguf_quant
        folder = gguf_dir or ensure_gguf(settings, cache_dir)
        self.tokenizer = ChatTokenizer(folder)
        self._settings = settings
        self._rng = np.random.default_rng()
        self._scheduler = BatchScheduler(
            folder / GGUF_FILE,
            slots=settings.parallel,
            context_tokens=settings.context_tokens,
            threads=threads,
            batch_threads=batch_threads,
            gpu=self.device == "cuda",
            pick=self._pick,
            stop_ids=self.tokenizer.eos_ids,
            make_decoder=lambda: IncrementalDecoder(self.tokenizer).push,
            batch_decode=settings.batch_decode,
        )
        self.name = settings.display_name + f" (llama.cpp {self.compute_type})"
        # End-of-turn scoring gets its own small context (own KV cache, one thread): it runs while another
        # session's reply is being generated, and must not evict that reply's cached prompt.
        self._turn_ctx = LlamaContext(
            folder / GGUF_FILE, threads=turn_threads, batch_threads=turn_threads, context_tokens=256, gpu=False
        )
        self._turn_lock = threading.Lock()
        self._sentence_end = [
            i for i in range(self._turn_ctx.n_vocab) if self.tokenizer.decode([i]).strip() in SENTENCE_END_TOKENS
        ]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    @property
    def last_reused_tokens(self) -> int:
        """Prompt tokens of the latest request that came from the KV cache (persona and history)."""
        return self._scheduler.last_reused_tokens

    def _pick(self, logits: npt.NDArray[np.float32], generated: list[int]) -> int:
        return pick_token(logits, generated, self._settings.repetition_penalty, self._settings.temperature, self._rng)

    def stream(self, messages: Sequence[ChatMessage], max_new_tokens: int, cancel: threading.Event) -> Iterator[str]:
        """Blocking iterator over text pieces; many may run at once (from different threads), batched together."""
        prompt = self.tokenizer.prompt_ids(messages)
        if cancel.is_set():
            return iter(())
        return self._scheduler.submit(prompt, max_new_tokens, cancel)

    def sentence_end_probability(self, transcript: str) -> float:
        """P(the speaker's sentence is finished) from the language model alone: the probability that the next
        token after the lower-cased, unpunctuated transcript is sentence-final punctuation. Near 0 after
        "and", "because", "I was going to"; high after a complete clause. One forward pass (~10-40 ms)."""
        words = _WORDS.findall(transcript.lower())
        if not words:
            return 0.0
        ids = self.tokenizer.encode(" ".join(words))[-200:]
        with self._turn_lock:
            logits, _ = self._turn_ctx.logits_after(ids)
        logits = logits.astype(np.float64)
        probs = np.exp(logits - logits.max())
        return float(probs[self._sentence_end].sum() / probs.sum())

    def close(self) -> None:
        self._scheduler.close()
        self._turn_ctx.close()
