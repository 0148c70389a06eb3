"""Continuous batching on one llama.cpp context: every active reply is a sequence (a slot) in one unified KV cache,
and one scheduler thread advances all of them with a single ``llama_decode`` per step (one token each).

Fairness comes from the loop itself: a newly arrived prompt is evaluated before the next decode step (a session
waiting for its first words goes first), and then every active reply gets one token per step, so a long answer
never blocks another session's first audio. Decoding 8 tokens in one batch costs little more than one on a CPU
(the weights are read once), so concurrent sessions share the cores instead of queueing.

Each slot keeps the tokens it holds in the KV cache. A new prompt takes the free slot with the longest common
prefix (a session's next turn finds its whole history), and when another slot holds a longer prefix (the persona
system prompt) it is copied cell-for-cell inside the cache (``llama_memory_seq_cp``): the persona is evaluated
once for all sessions.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)
_END = object()


@dataclass(eq=False)
class _Request:
    prompt: list[int]
    max_new_tokens: int
    cancel: threading.Event
    out: queue.SimpleQueue[object] = field(default_factory=queue.SimpleQueue)
    slot: int = -1
    generated: list[int] = field(default_factory=list)
    logits: npt.NDArray[np.float32] | None = None
    on_token: Callable[[int], str] | None = None
    reused: int = 0


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class BatchScheduler:
    """Owns the llama.cpp context; ``submit`` may be called from any thread."""

    def __init__(
        self,
        gguf: Path,
        *,
        slots: int,
        context_tokens: int,
        threads: int,
        batch_threads: int,
        gpu: bool,
        pick: Callable[[npt.NDArray[np.float32], list[int]], int],
        stop_ids: frozenset[int],
        make_decoder: Callable[[], Callable[[int], str]],
        batch_decode: bool = True,
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals as internals

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's load chatter off stderr
        self._ll = llama_cpp
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = -1 if gpu else 0
        self._model: Any = internals.LlamaModel(path_model=str(gguf), params=model_params, verbose=False)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = context_tokens * slots
        params.n_batch = 512
        params.n_ubatch = 512
        params.n_seq_max = slots
        params.kv_unified = True
        params.n_threads = threads
        params.n_threads_batch = batch_threads
        self._ctx: Any = internals.LlamaContext(model=self._model, params=params, verbose=False)
        self._mem = llama_cpp.llama_get_memory(self._ctx.ctx)
        self.n_vocab = int(self._model.n_vocab())
        self.slots = slots
        self.per_slot = context_tokens
        self._batch: Any = internals.LlamaBatch(n_tokens=max(512, slots), embd=0, n_seq_max=1, verbose=False)
        self.batch_decode = batch_decode  # False: one llama_decode per reply per step (round robin)
        self._pick = pick
        self._stop = stop_ids
        self._make_decoder = make_decoder
        self._slot_tokens: list[list[int]] = [[] for _ in range(slots)]
        self._busy: list[bool] = [False] * slots
        self._waiting: deque[_Request] = deque()
        self._lock = threading.Condition()
        self._closed = False
        self.last_reused_tokens = 0
        self._thread = threading.Thread(target=self._loop, name="llamacpp-scheduler", daemon=True)
        self._thread.start()

    # ---- public ----------------------------------------------------------------------------------------------
    def submit(self, prompt: list[int], max_new_tokens: int, cancel: threading.Event) -> Iterator[str]:
        if len(prompt) + max_new_tokens > self.per_slot:
            raise ValueError(f"prompt of {len(prompt)} tokens + {max_new_tokens} new exceed {self.per_slot} per reply")
        request = _Request(list(prompt), max_new_tokens, cancel)
        with self._lock:
            if self._closed:
                raise RuntimeError("the LLM scheduler is closed")
            self._waiting.append(request)
            self._lock.notify()
        try:
            while not cancel.is_set():  # pieces already queued are dropped once cancelled (barge-in)
                item = request.out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield str(item)
        finally:
            cancel.set()  # a consumer that stops early frees the slot at the next step

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout=10)
        self._batch.close()
        self._ctx.close()
        self._model.close()

    # ---- scheduler thread ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        active: list[_Request] = []
        while True:
            with self._lock:
                while not self._closed and not active and not self._waiting:
                    self._lock.wait()
                if self._closed:
                    for request in [*active, *self._waiting]:
                        request.out.put(RuntimeError("the LLM is shutting down"))
                    return
                admitted: list[_Request] = []
                while self._waiting and not all(self._busy):
                    request = self._waiting.popleft()
                    request.slot = self._take_slot(request.prompt)
                    admitted.append(request)
            for request in admitted:  # new prompts first: their first token is what a user waits for
                try:
                    self._prefill(request)
                    active.append(request)
                except Exception as exc:
                    self._finish(request, exc)
            active = self._step(active)

    def _take_slot(self, prompt: list[int]) -> int:
        free = [s for s in range(self.slots) if not self._busy[s]]
        slot = max(free, key=lambda s: common_prefix(self._slot_tokens[s], prompt))
        own = common_prefix(self._slot_tokens[slot], prompt)
        donor = max(range(self.slots), key=lambda s: common_prefix(self._slot_tokens[s], prompt))
        shared = common_prefix(self._slot_tokens[donor], prompt)
        if shared > own + 16:  # another slot holds more of this prompt (the persona): copy its cells
            self._ll.llama_memory_seq_rm(self._mem, slot, 0, -1)
            self._ll.llama_memory_seq_cp(self._mem, donor, slot, 0, shared)
            self._slot_tokens[slot] = self._slot_tokens[donor][:shared]
        self._busy[slot] = True
        return slot

    def _prefill(self, request: _Request) -> None:
        slot, prompt = request.slot, request.prompt
        keep = min(common_prefix(self._slot_tokens[slot], prompt), len(prompt) - 1)
        if not self._ll.llama_memory_seq_rm(self._mem, slot, keep, -1):
            self._ll.llama_memory_seq_rm(self._mem, slot, 0, -1)
            keep = 0
        self._slot_tokens[slot] = prompt[:keep]
        request.reused = keep
        self.last_reused_tokens = keep
        rest = prompt[keep:]
        for start in range(0, len(rest), 512):
            chunk = rest[start : start + 512]
            self._fill_batch([(t, keep + start + i, slot, start + i == len(rest) - 1) for i, t in enumerate(chunk)])
            self._decode()
        self._slot_tokens[slot] = list(prompt)
        request.logits = self._logits(self._batch.batch.n_tokens - 1)
        request.on_token = self._make_decoder()

    def _step(self, active: list[_Request]) -> list[_Request]:
        """One token for every active request: pick from its logits, emit, then decode all picks in one batch."""
        going: list[tuple[_Request, int]] = []
        for request in active:
            if request.cancel.is_set():
                self._finish(request)
                continue
            assert request.logits is not None and request.on_token is not None  # noqa: S101 - set by _prefill
            token = self._pick(request.logits, request.generated)
            if token in self._stop:
                self._finish(request)
                continue
            request.generated.append(token)
            if piece := request.on_token(token):
                request.out.put(piece)
            if len(request.generated) >= request.max_new_tokens:
                self._finish(request)
                continue
            going.append((request, token))
        if not going:
            return []
        groups = [going] if self.batch_decode else [[pair] for pair in going]
        alive: list[_Request] = []
        for group in groups:
            self._fill_batch([(t, len(self._slot_tokens[r.slot]), r.slot, True) for r, t in group])
            try:
                self._decode()
            except Exception as exc:  # every request in the failed batch gets the error
                for request, _ in group:
                    self._finish(request, exc)
                continue
            for index, (request, token) in enumerate(group):
                self._slot_tokens[request.slot].append(token)
                request.logits = self._logits(index)
                alive.append(request)
        return alive

    def _finish(self, request: _Request, error: BaseException | None = None) -> None:
        request.out.put(error if error is not None else _END)
        with self._lock:
            self._busy[request.slot] = False

    # ---- llama.cpp plumbing --------------------------------------------------------------------------------
    def _fill_batch(self, rows: list[tuple[int, int, int, bool]]) -> None:
        batch = self._batch.batch
        batch.n_tokens = len(rows)
        for i, (token, pos, seq, logits) in enumerate(rows):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.seq_id[i][0] = seq
            batch.n_seq_id[i] = 1
            batch.logits[i] = logits

    def _decode(self) -> None:
        status = self._ll.llama_decode(self._ctx.ctx, self._batch.batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed ({status}): the KV cache may be full")

    def _logits(self, batch_index: int) -> npt.NDArray[np.float32]:
        pointer: Any = self._ll.llama_get_logits_ith(self._ctx.ctx, batch_index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()
