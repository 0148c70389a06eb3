"""One conversational turn, shared by the WebSocket and the REST text chat: emotion, safety, prompt, storage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.config import Settings
from backend.core.audio_utils import FloatAudio
from backend.core.exceptions import SessionNotFound, TextTooLong
from backend.engines.protocols import ChatMessage
from backend.services.emotion_service import EmotionService
from backend.services.llm_service import LLMService
from backend.services.prompting import HistoryTurn
from backend.services.safety import CrisisDetector, CrisisResource, crisis_reply
from backend.services.session_service import SessionService

HISTORY_TURNS_FOR_PROMPT = 24


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
        self.resources = [
            CrisisResource(name=r.name, contact=r.contact) for r in settings.safety.resources[settings.safety.locale]
        ]

    def check_length(self, text: str) -> None:
        limit = self.settings.server.max_text_chars
        if len(text) > limit:
            raise TextTooLong(f"text is {len(text)} characters; the limit is {limit}")

    async def prompt_history(self, session_id: str) -> list[HistoryTurn]:
        stored = await self.sessions.get(session_id, last_turns=HISTORY_TURNS_FOR_PROMPT)
        return [HistoryTurn(t.role, t.content, t.emotion, t.interrupted) for t in stored.turns]

    async def prepare(
        self, session_id: str, text: str, audio_16k: FloatAudio | None = None, *, turn_id: str | None = None
    ) -> PreparedTurn:
        """Read the emotion, store the user's turn (before anything can fail later), check safety, build the prompt."""
        history = await self.prompt_history(session_id)
        emotion = await self.emotion.analyze(text, audio_16k)
        verdict = self.detector.check(text) if self.settings.safety.enabled else None
        category = verdict.category if verdict is not None and verdict.is_crisis else None
        await self.sessions.add_turn(
            session_id, "user", text, emotion=emotion, safety=category is not None, turn_id=turn_id
        )
        reply = crisis_reply(category, self.resources) if category else None
        messages = [] if category else self.llm.messages(history, text, emotion)
        return PreparedTurn(session_id, text, emotion, category, reply, messages)

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
        reply = prepared.crisis_reply or await self.llm.complete(prepared.messages) or "I'm here with you."
        await self.save_reply(prepared, reply)
        return prepared, reply
