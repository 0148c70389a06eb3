"""One spoken reply: sentence chunking of the LLM stream, what was queued for playback, and what the user heard
before an interruption."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

SENTENCE_END = re.compile(r"(.+?[.!?]+[\"')\]]?)\s+", re.DOTALL)


FIRST_CLAUSE = re.compile(r"((?:\S+\s+){3,}?\S+?[,;:])\s+")


def split_sentences(buffer: str, *, first: bool = False) -> tuple[list[str], str]:
    """Complete sentences (followed by whitespace) and the unfinished rest.

    With ``first`` (nothing spoken yet in this answer) a clause of at least four words ending in a comma also
    counts, so the first audio starts sooner; later text goes by whole sentences for natural prosody.
    """
    done: list[str] = []
    pos = 0
    for match in SENTENCE_END.finditer(buffer):
        sentence = match.group(1).strip()
        if len(sentence) >= 2:
            done.append(sentence)
        pos = match.end()
    if first and not done and (clause := FIRST_CLAUSE.match(buffer)) is not None:
        done.append(clause.group(1).strip())
        pos = clause.end()
    return done, buffer[pos:]


@dataclass
class SpokenSegment:
    text: str
    start_ms: float
    duration_ms: float


@dataclass
class ActiveReply:
    """The spoken side of a reply: what was queued for playback, and whether (why) it was cut off."""

    turn_id: str
    task: asyncio.Task[None] | None = None
    segments: list[SpokenSegment] = field(default_factory=list)
    audio_ms_queued: float = 0.0
    interrupted: str | None = None
    tts_first_audio_ms: float | None = None
    played_ms_ack: float | None = None

    def heard_text(self, played_ms: float) -> str:
        heard: list[str] = []
        for seg in self.segments:
            if seg.start_ms + seg.duration_ms <= played_ms:
                heard.append(seg.text)
                continue
            fraction = (played_ms - seg.start_ms) / seg.duration_ms if seg.duration_ms else 0.0
            words = seg.text.split()
            count = int(len(words) * max(0.0, fraction))
            if count:
                heard.append(" ".join(words[:count]))
            break
        return " ".join(heard)


def first_error(exc: BaseException | None) -> BaseException | None:
    """The TaskGroup wraps failures in an ExceptionGroup; the client needs the underlying error's code."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def ms_between(end: float | None, start: float | None) -> float | None:
    if end is None or start is None:
        return None
    return round(1000 * (end - start), 1)
