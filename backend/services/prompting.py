"""The mentor persona and how a turn becomes LLM messages. Shared by the service and scripts/train_lora.py,
so the adapter is trained on exactly the prompt format it is served with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from backend.engines.protocols import ChatMessage
from backend.models.emotion import EmotionData

PERSONA = (
    "You are ClarityMentor, a warm and concise mentor people talk to when they are stuck, stressed or deciding "
    "something. Acknowledge how the person feels, give one small concrete next step, ask at most one question, "
    "and answer in at most three short sentences. Speak like a caring person, never as an AI."
)
INTERRUPTED_NOTE = " [the user interrupted you here]"


@dataclass(frozen=True, slots=True)
class HistoryTurn:
    role: str
    content: str
    emotion: EmotionData | None = None
    interrupted: bool = False  # only a real interruption by the user is presented to the model as one
    safety: bool = False  # a crisis turn (the user's message, or the safety reply to it)


def emotion_tag(emotion: EmotionData | None) -> str:
    if emotion is None:
        return ""
    return f"[user sounds: {emotion.primary_emotion}, {emotion.confidence:.2f}] "


def render_turn(turn: HistoryTurn) -> ChatMessage:
    if turn.role == "user":
        return ChatMessage("user", emotion_tag(turn.emotion) + turn.content)
    return ChatMessage("assistant", turn.content + (INTERRUPTED_NOTE if turn.interrupted else ""))


def build_messages(
    history: Sequence[HistoryTurn],
    user_text: str,
    emotion: EmotionData | None,
    *,
    count_tokens: Callable[[str], int],
    history_token_budget: int,
    check_in: str | None = None,
) -> list[ChatMessage]:
    """Persona + as much recent history as fits the budget (newest first, whole turns) + the new user turn."""
    kept: list[ChatMessage] = []
    used = 0
    for turn in reversed(history):
        if turn.role == "assistant" and not turn.content.strip() and not turn.interrupted:
            continue  # a reply that failed before its first sentence: nothing was said
        message = render_turn(turn)
        cost = count_tokens(message.content) + 4
        if used + cost > history_token_budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    while kept and kept[0].role != "user":  # a window must not open on an orphan assistant reply
        kept.pop(0)
    current = render_turn(HistoryTurn("user", user_text, emotion))
    # After a crisis turn, a note right before the new message (the persona prefix stays cacheable).
    note = [ChatMessage("system", check_in)] if check_in else []
    return [ChatMessage("system", PERSONA), *kept, *note, current]
