"""One conversational turn, shared by the WebSocket and the REST text chat: emotion, safety, prompt, storage."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from backend.config import Settings
from backend.core.audio_utils import FloatAudio
from backend.core.exceptions import SessionNotFound, TextTooLong
from backend.engines.protocols import ChatMessage
from backend.services.crisis import CHECK_IN_NOTE, SAFE_REPLACEMENT, decide, guard_sentence, guard_text, load_wording
from backend.services.emotion_service import EmotionService
from backend.services.llm_service import LLMService
from backend.services.prompting import HistoryTurn
from backend.services.safety import CrisisDetector
from backend.services.session_service import SessionService

log = logging.getLogger(__name__)
HISTORY_TURNS_FOR_PROMPT = 24
CHECK_IN_TURNS = 6  # after a crisis turn, this many later turns keep the gentle check-in note


@dataclass(slots=True)
class PreparedTurn:
    session_id: str
    text: str
    emotion: dict[str, Any]
    crisis_category: str | None
    crisis_reply: str | None
    messages: list[ChatMessage]


class MentorService:
    def __init__(self, settings: Settings, emotion: EmotionService, llm: LLMService, sessions: SessionService) -> None:
        self.settings = settings
        self.emotion = emotion
        self.llm = llm
        self.sessions = sessions
        self.detector = CrisisDetector()
        self.wording = load_wording(settings.safety.locale, settings.safety.resources_file)

    def check_length(self, text: str) -> None:
        limit = self.settings.server.max_text_chars
        if len(text) > limit:
            raise TextTooLong(f"text is {len(text)} characters; the limit is {limit}")

    async def prompt_history(self, session_id: str) -> list[HistoryTurn]:
        stored = await self.sessions.get(session_id, last_turns=HISTORY_TURNS_FOR_PROMPT)
        return [HistoryTurn(t.role, t.content, t.emotion, t.interrupted, t.safety) for t in stored.turns]

    async def prepare(
        self, session_id: str, text: str, audio_16k: FloatAudio | None = None, *, turn_id: str | None = None
    ) -> PreparedTurn:
        """Read the emotion, store the user's turn (before anything can fail later), check safety, build the prompt."""
        history = await self.prompt_history(session_id)
        emotion = await self.emotion.analyze(text, audio_16k)
        category = None
        if self.settings.safety.enabled:
            earlier = [t.content for t in history if t.role == "user"]
            models = self.emotion.models
            decision = await models.emotion_runner.run(decide, self.detector, models.engines.crisis, text, earlier)
            category = decision.category
            if category:
                log.warning("crisis turn in session %s: %s (%s)", session_id, category, decision.source)
        await self.sessions.add_turn(
            session_id, "user", text, emotion=emotion, safety=category is not None, turn_id=turn_id
        )
        reply = self.wording.reply(category) if category else None
        check_in = CHECK_IN_NOTE if any(t.safety for t in history[-CHECK_IN_TURNS:]) else None
        messages = [] if category else self.llm.messages(history, text, emotion, check_in)
        return PreparedTurn(session_id, text, emotion, category, reply, messages)

    def guard(self, sentence: str, session_id: str) -> str:
        """A generated sentence as it may be spoken: one that breaks a guard rule is replaced and logged."""
        code = guard_sentence(sentence)
        if code is None:
            return sentence
        log.warning("reply guard %s replaced a sentence in session %s", code, session_id)
        return SAFE_REPLACEMENT

    def guard_text(self, text: str, session_id: str) -> str:
        """A whole reply, sentence by sentence; everything after a replaced sentence is dropped."""
        return guard_text(text, lambda code: log.warning("reply guard %s in session %s", code, session_id))

    async def save_reply(
        self, prepared: PreparedTurn, reply: str, *, interrupted: bool = False, turn_id: str | None = None
    ) -> None:
        await self.sessions.add_turn(
            prepared.session_id,
            "assistant",
            reply,
            interrupted=interrupted,
            safety=prepared.crisis_category is not None,
            turn_id=turn_id,
        )

    async def text_chat(self, text: str, session_id: str | None) -> tuple[PreparedTurn, str]:
        self.check_length(text)
        if session_id is None:
            session_id = (await self.sessions.create()).session_id
        elif not await self.sessions.exists(session_id):
            raise SessionNotFound(f"session {session_id!r} not found")
        prepared = await self.prepare(session_id, text.strip())
        if prepared.crisis_reply is not None:
            reply = prepared.crisis_reply
        else:
            generated = await self.llm.complete(prepared.messages) or "I'm here with you."
            reply = self.guard_text(generated, session_id)
        await self.save_reply(prepared, reply)
        return prepared, reply
