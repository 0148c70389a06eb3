"""The one turn lifecycle. REST text chat, the voice socket and the one-shot CLI all run a turn through
``MentorService.turn()``:

1. ``begin``: read the emotion, decide safety (rules OR classifier, with the conversation so far), **store the
   user's turn** before anything else can fail, and build the prompt;
2. the caller consumes ``sentences(turn)``: the crisis reply, or the LLM's reply cut into sentences, each checked
   by the reply guard before anyone sees or hears it;
3. on leaving the block the assistant turn is stored **in every outcome**, shielded from cancellation:
   ``completed``; ``interrupted`` (the caller said so, with what the user heard); ``failed`` (an exception, with
   its error code, keeping what was produced); ``disconnected`` (the caller was cancelled: what was sent).
   Only ``interrupted`` is later presented to the LLM as an interruption.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from backend.config import Settings
from backend.core.audio_utils import FloatAudio
from backend.core.exceptions import ClarityError, SessionNotFound, TextTooLong
from backend.core.logging import bind_context
from backend.engines.protocols import ChatMessage
from backend.models.emotion import EmotionData
from backend.services.crisis import CHECK_IN_NOTE, SAFE_REPLACEMENT, decide, guard_sentence, load_wording
from backend.services.emotion_service import EmotionService
from backend.services.llm_service import LLMService
from backend.services.prompting import HistoryTurn
from backend.services.reply_stream import split_sentences
from backend.services.safety import CrisisDetector
from backend.services.session_service import Outcome, SessionService

log = logging.getLogger(__name__)
HISTORY_TURNS_FOR_PROMPT = 24
CHECK_IN_TURNS = 6  # after a crisis turn, this many later turns keep the gentle check-in note
EMPTY_REPLY = "I'm here with you. Tell me a little more about what's on your mind."


@dataclass(slots=True)
class Turn:
    """One turn in flight: what was decided before the reply, and what the reply has produced so far."""

    session_id: str
    turn_id: str
    text: str
    emotion: EmotionData
    crisis_category: str | None
    messages: list[ChatMessage]
    sentences_out: list[str] = field(default_factory=list)  # guarded sentences, in the order they were given out
    tokens: int = 0
    llm_start: float = 0.0
    first_token_at: float | None = None
    done_at: float | None = None
    outcome: Outcome | None = None
    heard_text: str | None = None
    error_code: str | None = None
    guard_code: str | None = None
    saved: bool = False

    @property
    def reply_text(self) -> str:
        return " ".join(self.sentences_out)

    def interrupt(self, heard_text: str) -> None:
        """The user cut the reply off: history keeps only what they heard, marked as interrupted."""
        self.outcome = "interrupted"
        self.heard_text = heard_text


class MentorService:
    def __init__(self, settings: Settings, emotion: EmotionService, llm: LLMService, sessions: SessionService) -> None:
        self.settings = settings
        self.emotion = emotion
        self.llm = llm
        self.sessions = sessions
        self.detector = CrisisDetector()
        self.wording = load_wording(settings.safety.locale, settings.safety.resources_file)
        self._saves: set[asyncio.Task[None]] = set()

    def check_length(self, text: str) -> None:
        limit = self.settings.server.max_text_chars
        if len(text) > limit:
            raise TextTooLong(f"text is {len(text)} characters; the limit is {limit}")

    async def prompt_history(self, session_id: str) -> list[HistoryTurn]:
        stored = await self.sessions.recent(session_id, HISTORY_TURNS_FOR_PROMPT)
        return [
            HistoryTurn(t.role, t.content, t.emotion, t.outcome == "interrupted" or t.interrupted, t.safety)
            for t in stored.turns
        ]

    # ---- the lifecycle --------------------------------------------------------------------------------------
    @asynccontextmanager
    async def turn(
        self, session_id: str, text: str, audio_16k: FloatAudio | None = None, *, turn_id: str | None = None
    ) -> AsyncIterator[Turn]:
        """Run one turn: ``async with mentor.turn(...) as turn: async for s in mentor.sentences(turn): ...``."""
        turn = await self.begin(session_id, text, audio_16k, turn_id=turn_id)
        try:
            yield turn
        except asyncio.CancelledError:
            if turn.outcome is None:
                turn.outcome = "disconnected"
            await self._save_shielded(turn)
            raise
        except Exception as exc:
            turn.outcome = "failed"
            turn.error_code = exc.code if isinstance(exc, ClarityError) else "internal_error"
            await self._save_shielded(turn)
            raise
        if turn.outcome is None:
            turn.outcome = "completed"
        await self._save_shielded(turn)

    async def begin(
        self, session_id: str, text: str, audio_16k: FloatAudio | None = None, *, turn_id: str | None = None
    ) -> Turn:
        """Read the emotion, check safety, store the user's turn (before anything can fail later), build the prompt."""
        self.check_length(text)
        turn_id = turn_id or uuid.uuid4().hex[:12]
        bind_context(session_id=session_id, turn_id=turn_id)
        history = await self.prompt_history(session_id)
        emotion = await self.emotion.analyze(text, audio_16k)
        category = None
        if self.settings.safety.enabled:
            earlier = [t.content for t in history if t.role == "user"]
            models = self.emotion.models
            decision = await models.emotion_runner.run(decide, self.detector, models.engines.crisis, text, earlier)
            category = decision.category
            if category:
                log.warning("crisis turn: %s (%s)", category, decision.source)
        await self.sessions.add_turn(
            session_id, "user", text, emotion=emotion, safety=category is not None, turn_id=turn_id
        )
        check_in = CHECK_IN_NOTE if any(t.safety for t in history[-CHECK_IN_TURNS:]) else None
        messages = [] if category else self.llm.messages(history, text, emotion, check_in)
        return Turn(session_id, turn_id, text, emotion, category, messages)

    async def sentences(self, turn: Turn) -> AsyncIterator[str]:
        """The reply, one sentence at a time (the first may be a clause, so speech starts sooner). A generated
        sentence that breaks a guard rule is replaced by a safe one and the reply ends there."""
        turn.llm_start = time.monotonic()
        if turn.crisis_category is not None:
            turn.first_token_at = turn.done_at = time.monotonic()
            # Sentence by sentence like any reply, so speech starts after the first one (TTS time grows with length).
            done, rest = split_sentences(self.wording.reply(turn.crisis_category) + " ")
            for sentence in [*done, *([rest.strip()] if rest.strip() else [])]:
                turn.sentences_out.append(sentence)
                yield sentence
            return
        buffer = ""
        async for piece in self.llm.stream(turn.messages):
            if turn.first_token_at is None:
                turn.first_token_at = time.monotonic()
            turn.tokens += 1
            buffer += piece
            done, buffer = split_sentences(buffer, first=not turn.sentences_out)
            for sentence in done:
                safe = self._guard(sentence, turn)
                turn.sentences_out.append(safe)
                yield safe
                if turn.guard_code is not None:
                    turn.done_at = time.monotonic()
                    return
        if buffer.strip():
            safe = self._guard(buffer.strip(), turn)
            turn.sentences_out.append(safe)
            yield safe
        turn.done_at = time.monotonic()
        if not turn.sentences_out:
            turn.sentences_out.append(EMPTY_REPLY)
            yield EMPTY_REPLY

    def _guard(self, sentence: str, turn: Turn) -> str:
        code = guard_sentence(sentence)
        if code is None:
            return sentence
        turn.guard_code = code
        log.warning("reply guard %s replaced a sentence", code)
        return SAFE_REPLACEMENT

    # ---- persistence ----------------------------------------------------------------------------------------
    async def _save(self, turn: Turn) -> None:
        if turn.saved:
            return
        turn.saved = True
        content = turn.heard_text if turn.outcome == "interrupted" and turn.heard_text is not None else turn.reply_text
        await self.sessions.add_turn(
            turn.session_id,
            "assistant",
            content,
            safety=turn.crisis_category is not None,
            turn_id=turn.turn_id,
            outcome=turn.outcome,
            error_code=turn.error_code,
        )

    async def _save_shielded(self, turn: Turn) -> None:
        """Store the assistant turn even if the caller is cancelled meanwhile (shutdown waits in ``drain``)."""
        task = asyncio.ensure_future(self._save(turn))
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)
        await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for every assistant turn still being stored (graceful shutdown)."""
        if self._saves:
            await asyncio.gather(*list(self._saves), return_exceptions=True)

    # ---- REST -----------------------------------------------------------------------------------------------
    async def text_chat(self, text: str, session_id: str | None, *, owner: str | None = None) -> Turn:
        self.check_length(text)
        if session_id is None:
            session_id = (await self.sessions.create(owner=owner)).session_id
        elif not await self.sessions.exists(session_id, owner=owner):
            raise SessionNotFound(f"session {session_id!r} not found")
        async with self.turn(session_id, text.strip()) as turn:
            async for _sentence in self.sentences(turn):
                pass
        return turn
