"""Turn endpointing on VAD frames. Time is counted in samples, so a client sending faster than real time
gets the same cut points as a real-time one."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from backend.config import VADSettings
from backend.core.audio_utils import STT_RATE, FloatAudio
from backend.engines.protocols import VADStream

QUESTION_WORDS = ("what", "how", "why", "should", "could", "can", "do", "does", "is", "are", "would", "will")
# A turn that stops on one of these is very likely mid-sentence ("and...", "because...", "I was going to...").
CONTINUATION_WORDS = frozenset(
    "and but or so because the a an to of my i if that with um uh er like then when for about is was are were am "
    "be been being have has had will would can could should at in on from into between than as by just really "
    "very our your their his her its this these those who which where while until unless since after before "
    "although though whether also even maybe well mean honestly basically actually thing things".split()
)


@dataclass(slots=True)
class Utterance:
    audio: FloatAudio
    speech_end_sample: int  # stream position (16 kHz samples) of the last speech frame
    forced: bool = False  # ended by max length, end_of_speech or the no-audio timeout rather than silence


@dataclass(slots=True)
class FrameResult:
    utterances: list[Utterance] = field(default_factory=list)
    speech_started: bool = False
    speech_run_ms: float = 0.0  # length of the ongoing stretch of speech (barge-in uses this)


def adaptive_end_silence_ms(settings: VADSettings, partial_text: str, words_per_second: float | None) -> int:
    """Longer wait when the speaker seems mid-sentence or slow, shorter after a clear question."""
    if not settings.adaptive:
        return settings.end_silence_ms
    wait = float(settings.end_silence_ms)
    text = partial_text.strip().lower()
    words = text.rstrip(".,!?").split()
    if words:
        # Order matters: a dangling function word means mid-sentence even when Whisper added a "?" or ".".
        if words[-1] in CONTINUATION_WORDS or text.endswith((",", "-", "...")):
            wait *= 1.8
        elif text.endswith("?") or (words[0] in QUESTION_WORDS and text.endswith(".")):
            wait *= 0.6
        elif text.endswith((".", "!")):
            wait *= 0.85
        else:  # Whisper punctuates finished sentences; no final punctuation suggests the speaker is mid-thought
            wait *= 1.4
    if words_per_second is not None and words_per_second < 1.8:  # slow, hesitant speaker
        wait *= 1.3
    return int(min(max(wait, settings.min_end_silence_ms), settings.max_end_silence_ms))


# The LLM's P(sentence finished) for a pause transcript (see LlamaCppLLM.sentence_end_probability).
LM_INCOMPLETE_BELOW = 0.05  # "and", "because", "I was going to": the sentence cannot end here
LM_COMPLETE_ABOVE = 0.3


# Smart Turn's acoustic P(turn complete) for the pause's audio (engines/smart_turn.py). Trained on human speech; on
# synthetic voices it misfires, so it only confirms an early end or adds a second "unfinished" vote: it can lengthen
# the text signals' wait, never shorten it (on the espeak bench a shorter wait when all three agreed cost a cut-off).
ACOUSTIC_INCOMPLETE_BELOW = 0.2
ACOUSTIC_COMPLETE_ABOVE = 0.5


def combined_end_silence_ms(
    settings: VADSettings,
    partial_text: str,
    words_per_second: float | None,
    p_sentence_end: float | None,
    p_acoustic: float | None = None,
) -> int:
    """The wait after a pause, from the rules (dangling word, Whisper's punctuation, speaking rate), the LLM's
    P(sentence finished) and, when given, the acoustic P(turn complete). End early only when every signal present
    agrees the turn is finished; wait the longest when the LLM, or any two signals, see it unfinished; in between
    otherwise. Always within ``min/max_end_silence_ms``. Without an LLM or acoustic score this is
    :func:`adaptive_end_silence_ms`."""
    rules = adaptive_end_silence_ms(settings, partial_text, words_per_second)
    if not settings.adaptive or (p_sentence_end is None and p_acoustic is None):
        return rules
    base = float(settings.end_silence_ms)
    wait = _text_wait(rules, base, p_sentence_end)
    if p_acoustic is not None:
        votes = (
            (rules < base) - (rules > base),  # the rules: a wait below the default means "finished"
            0 if p_sentence_end is None else _vote(p_sentence_end, LM_INCOMPLETE_BELOW, LM_COMPLETE_ABOVE),
            _vote(p_acoustic, ACOUSTIC_INCOMPLETE_BELOW, ACOUSTIC_COMPLETE_ABOVE),
        )
        if votes.count(-1) >= 2:
            wait = max(wait, base * 1.8)
        elif wait < base and votes[2] < 1:
            wait = base  # the text says finished, the voice does not confirm it: the default wait
    return int(min(max(wait, settings.min_end_silence_ms), settings.max_end_silence_ms))


def _vote(p: float, incomplete_below: float, complete_above: float) -> int:
    """+1 finished, -1 unfinished, 0 unsure."""
    return -1 if p < incomplete_below else (1 if p >= complete_above else 0)


def _text_wait(rules: int, base: float, p_sentence_end: float | None) -> float:
    """Rules + LLM: short only when both say finished, longest when the LLM says unfinished."""
    if p_sentence_end is None:
        return rules
    wait: float
    if p_sentence_end < LM_INCOMPLETE_BELOW:
        wait = max(rules, base * 1.8)
    elif rules < base and p_sentence_end >= LM_COMPLETE_ABOVE:
        wait = rules  # both say finished: the rules' shorter wait stands
    elif rules < base:
        wait = base  # the rules say finished, the LLM is unsure: the default wait
    else:
        wait = rules if p_sentence_end < LM_COMPLETE_ABOVE else (rules + base) / 2
    return wait


class Endpointer:
    def __init__(self, settings: VADSettings, stream: VADStream, frame_samples: int = 512) -> None:
        self.settings = settings
        self._vad = stream
        self._frame = frame_samples
        self._pending = np.zeros(0, dtype=np.float32)
        self._preroll: deque[FloatAudio] = deque(
            maxlen=max(1, settings.pre_roll_ms * STT_RATE // 1000 // frame_samples)
        )
        self._speech: list[FloatAudio] = []
        self._candidate: list[FloatAudio] = []
        self.position = 0  # samples consumed
        self.triggered = False
        self._speech_run = 0
        self._silence_run = 0
        self._last_speech_end = 0
        self.heard_audio_since_emit = False
        self.end_silence_ms = settings.end_silence_ms

    @property
    def utterance_audio(self) -> FloatAudio:
        return np.concatenate(self._speech) if self._speech else np.zeros(0, dtype=np.float32)

    @property
    def last_speech_end(self) -> int:
        """Stream position (16 kHz samples) of the last frame of speech."""
        return self._last_speech_end

    @property
    def silence_ms(self) -> float:
        """Length of the pause after speech so far (0 while speaking)."""
        return 1000.0 * self._silence_run / STT_RATE if self.triggered else 0.0

    @property
    def speech_ms(self) -> float:
        return 1000.0 * len(self._speech) * self._frame / STT_RATE

    def feed(self, audio: FloatAudio) -> FrameResult:
        result = FrameResult()
        if audio.size:
            self.heard_audio_since_emit = True
        data = np.concatenate([self._pending, audio]) if self._pending.size else audio
        usable = data.size - data.size % self._frame
        self._pending = data[usable:].copy()
        s = self.settings
        for start in range(0, usable, self._frame):
            frame = data[start : start + self._frame]
            prob = self._vad.speech_prob(frame)
            self.position += self._frame
            if prob >= s.threshold:
                self._speech_run += self._frame
                self._silence_run = 0
                self._last_speech_end = self.position
                if not self.triggered:
                    self._candidate.append(frame)
                    if self._speech_run * 1000 >= s.min_speech_ms * STT_RATE:
                        self.triggered = True
                        result.speech_started = True
                        self._speech = [*self._preroll, *self._candidate]
                        self._candidate = []
                    continue
            elif prob < s.neg_threshold:
                self._speech_run = 0
                if not self.triggered:
                    self._preroll.extend(self._candidate)
                    self._candidate = []
                    self._preroll.append(frame)
                    continue
                self._silence_run += self._frame
            elif not self.triggered:  # between thresholds before speech: keep as context
                self._candidate.append(frame)
                continue
            self._speech.append(frame)
            if self._silence_run * 1000 >= self.end_silence_ms * STT_RATE:
                result.utterances.append(self._emit(forced=False))
            elif len(self._speech) * self._frame >= s.max_utterance_s * STT_RATE:
                result.utterances.append(self._emit(forced=True))
        result.speech_run_ms = 1000.0 * self._speech_run / STT_RATE
        return result

    def flush(self) -> Utterance | None:
        """End the current utterance now (end_of_speech, audio timeout). None when no speech was heard."""
        if not self.triggered:
            self._candidate = []
            self.heard_audio_since_emit = False
            return None
        return self._emit(forced=True)

    def _emit(self, *, forced: bool) -> Utterance:
        # Keep ~200 ms of the trailing silence: Whisper transcribes final words better with a little tail.
        keep_tail = min(self._silence_run, STT_RATE // 5)
        audio = self.utterance_audio
        if self._silence_run > keep_tail:
            audio = audio[: audio.size - (self._silence_run - keep_tail)]
        utterance = Utterance(audio=audio, speech_end_sample=self._last_speech_end, forced=forced)
        self._speech = []
        self._candidate = []
        self._preroll.clear()
        self.triggered = False
        self._speech_run = 0
        self._silence_run = 0
        self.heard_audio_since_emit = False
        return utterance
