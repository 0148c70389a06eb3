"""The espeak-ng engine on the real command: audio comes back, sad replies are delivered slower, bad voices fail."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from backend.config import TTSSettings
from backend.engines.espeak_tts import EspeakTTS

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
SENTENCE = "Let's take this one small step at a time, together."


def test_speaks_and_follows_sadness_with_a_slower_delivery() -> None:
    tts = EspeakTTS(TTSSettings())
    neutral = tts.synthesize(SENTENCE)
    sad = tts.synthesize(SENTENCE, "sadness")
    assert neutral.size > tts.sample_rate  # over a second of speech
    assert sad.size > neutral.size * 1.08  # noticeably slower
    assert abs(int(sad.astype("int32").__abs__().max())) < abs(int(neutral.astype("int32").__abs__().max()))
    assert tts.synthesize("   ").size == 0


def test_text_that_looks_like_an_option_is_spoken_not_parsed() -> None:
    tts = EspeakTTS(TTSSettings())
    assert tts.synthesize("-v --help").size > 0


def test_is_safe_to_call_from_several_threads() -> None:
    tts = EspeakTTS(TTSSettings())
    with ThreadPoolExecutor(4) as pool:
        sizes = [pcm.size for pcm in pool.map(tts.synthesize, [SENTENCE] * 8)]
    assert len(set(sizes)) == 1 and sizes[0] > 0


def test_unknown_voice_fails_at_load() -> None:
    assert EspeakTTS(TTSSettings(voice="en-us+f3")).synthesize("Hello.").size > 0
    with pytest.raises(ValueError, match="no-such-voice"):
        EspeakTTS(TTSSettings(voice="no-such-voice-xx"))
