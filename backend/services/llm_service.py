"""LLM replies: the prompt (persona + history within a token budget + emotion), streamed off the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence

from backend.core.exceptions import ClarityError, ModelError, Overloaded
from backend.engines.protocols import ChatMessage
from backend.models.emotion import EmotionData
from backend.services.model_service import ModelService
from backend.services.prompting import HistoryTurn, build_messages

_DONE = object()


class LLMService:
    def __init__(self, models: ModelService) -> None:
        self._models = models

    def messages(
        self,
        history: Sequence[HistoryTurn],
        user_text: str,
        emotion: EmotionData | None,
        check_in: str | None = None,
    ) -> list[ChatMessage]:
        llm = self._models.engines.llm
        return build_messages(
            history,
            user_text,
            emotion,
            count_tokens=llm.count_tokens,
            history_token_budget=self._models.settings.llm.history_token_budget,
            check_in=check_in,
        )

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """Yield text pieces. Closing the iterator (or cancelling its consumer) stops generation."""
        runner = self._models.llm_runner
        if runner.pending >= runner.max_pending:
            raise Overloaded("the language model is busy; retry shortly")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()
        max_tokens = self._models.settings.llm.max_response_tokens
        engine = self._models.engines.llm

        def produce() -> None:
            try:
                for piece in engine.stream(messages, max_tokens, cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, piece)
            except Exception as exc:  # handed to the consumer, which raises it as a ModelError
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        job = asyncio.ensure_future(runner.run(produce))

        def job_failed(future: asyncio.Future[None]) -> None:
            # The runner can refuse the job (queue filled meanwhile): hand that error to the consumer too.
            if not future.cancelled() and future.exception() is not None:
                queue.put_nowait(future.exception())

        job.add_done_callback(job_failed)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, ClarityError):
                    raise item
                if isinstance(item, Exception):
                    raise ModelError(f"the language model failed: {type(item).__name__}: {item}")
                yield str(item)
        finally:
            cancel.set()
            # Generation stops at the next token; never wait for it here (barge-in must be fast).

    async def sentence_end_probability(self, transcript: str) -> float | None:
        """The LLM's P(sentence finished) for a pause's transcript; None when the engine cannot score it."""
        score = getattr(self._models.engines.llm, "sentence_end_probability", None)
        if score is None or not transcript.strip():
            return None
        runner = self._models.turn_runner
        if runner.pending >= runner.max_pending:
            return None  # a busy scorer must never delay a turn: fall back to the rules
        return float(await runner.run(score, transcript))

    async def complete(self, messages: list[ChatMessage]) -> str:
        return "".join([piece async for piece in self.stream(messages)]).strip()
