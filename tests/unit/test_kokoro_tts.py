"""Kokoro-82M: the phoneme -> token mapping, style-row selection, batching and trimming without the model; the model
inputs through a fake onnxruntime session; one integration test on the real model (through Whisper and back)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from backend.config import REPO_ROOT, Settings, TTSSettings
from backend.engines import kokoro_tts
from backend.engines.kokoro_phonemes import (
    MAX_TOKENS,
    EspeakPhonemizer,
    fix_ipa,
    language_of,
    load_vocab,
    normalize_text,
    split_batches,
    split_punctuation,
    style_row,
    tokenize,
)
from backend.engines.kokoro_tts import KokoroTTS, load_voice, providers_for, trim_silence
from backend.engines.protocols import TextToSpeech

VOCAB = load_vocab(REPO_ROOT / kokoro_tts.VOCAB_FILE)
VOICES = REPO_ROOT / "models" / "kokoro" / "voices"
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


# ---- phonemes -> tokens ----------------------------------------------------------------------------------------
def test_vocabulary_is_kokoros_own() -> None:
    assert len(VOCAB) == 114
    assert (VOCAB[" "], VOCAB["."], VOCAB["ˈ"], VOCAB["ɹ"], VOCAB["ə"]) == (16, 4, 156, 123, 83)
    assert len(set(VOCAB.values())) == len(VOCAB) and 0 not in VOCAB.values()  # 0 is the pad


def test_tokenize_maps_each_phoneme_and_drops_unknown_symbols() -> None:
    assert tokenize("həlˈoʊ.", VOCAB) == [50, 83, 54, 156, 57, 135, 4]
    assert tokenize("bˈʌʔn̩", VOCAB) == [44, 156, 138, 148, 56]  # the syllabic mark U+0329 is not in the vocabulary
    assert tokenize("«»", VOCAB) == []


def test_espeak_ipa_is_fixed_into_kokoros_symbols() -> None:
    assert fix_ipa("rˈʌʃən  x", "en-us") == "ɹˈʌʃən k"
    assert fix_ipa("nˈaɪnti", "en-us") == "nˈaɪndi"  # the American flap
    assert fix_ipa("nˈaɪnti", "en-gb") == "nˈaɪnti"
    assert fix_ipa("mʲuː ɬ", "en-us") == "mjuː l"


def test_punctuation_is_kept_between_runs_of_words() -> None:
    assert split_punctuation("Hello there, how are you?") == [
        (False, "Hello there"),
        (True, ", "),
        (False, "how are you"),
        (True, "?"),
    ]
    assert normalize_text("  “Dr. Smith” said 10,000 (or 3-4)  ") == '"Doctor Smith" said 10000 «or 3 to 4»'


def test_voice_names_set_the_accent() -> None:
    assert language_of("af_heart") == "en-us" and language_of("bm_george") == "en-gb"
    with pytest.raises(ValueError, match="English"):
        language_of("jf_alpha")


@needs_espeak
def test_phonemes_come_from_the_espeak_command_with_punctuation_in_place() -> None:
    phonemizer = EspeakPhonemizer(shutil.which("espeak-ng") or "espeak-ng")
    assert phonemizer.phonemize("Hello there, how are you feeling today?", "en-us") == (
        "həlˈoʊ ðˈɛɹ, hˌaʊ ɑːɹ juː fˈiːlɪŋ tədˈeɪ?"
    )
    assert phonemizer.phonemize("-v --help", "en-us")  # spoken, never parsed as options
    assert phonemizer.phonemize("  ...  ", "en-us") == "..."
    # a run espeak cuts into two clauses (or one that speaks nothing) falls back to one call per run, in order
    long_run = " ".join(["word"] * 150)
    phonemes = phonemizer.phonemize(f"Start, {long_run}. End!", "en-us")
    assert phonemes.startswith("stˈɑːɹt, wˈɜːd") and phonemes.endswith("ˈɛnd!")
    assert phonemes.count("wˈɜːd") == 150


# ---- style rows, batches, trimming ------------------------------------------------------------------------------
def test_style_row_is_chosen_by_token_count() -> None:
    table = np.repeat(np.arange(510, dtype=np.float32)[:, None, None], 256, axis=2)  # row i is all i, 510x1x256
    for n_tokens, row in ((1, 0), (12, 11), (510, 509), (0, 0), (900, 509)):
        style = style_row(table, n_tokens)
        assert style.shape == (1, 256) and style.dtype == np.float32
        assert float(style[0, 0]) == row


def test_shipped_voices_are_510_style_rows() -> None:
    for name in ("af_heart", "am_michael"):
        voice = load_voice(VOICES / f"{name}.bin")
        assert voice.shape == (510, 256) and np.isfinite(voice).all()
    assert (REPO_ROOT / "models" / "kokoro" / "NOTICE.md").exists()


def test_a_file_that_is_not_a_voice_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 12)
    with pytest.raises(ValueError, match="not a Kokoro voice"):
        load_voice(bad)


def test_long_text_is_cut_into_batches_within_the_context() -> None:
    sentence = "ðɪs ɪz ə sˈɛntəns, wɪð ə klˈɔz. "
    long_text = sentence * 40
    batches = split_batches(long_text, VOCAB)
    assert len(batches) > 1
    assert all(len(tokenize(b, VOCAB)) <= MAX_TOKENS for b in batches)
    assert all(b.endswith(".") for b in batches)  # cut after sentences, never inside one
    assert split_batches(sentence, VOCAB) == [sentence.strip()]
    assert all(len(b) <= 20 for b in split_batches("a" * 50, VOCAB, limit=20))  # one endless word: sliced


def test_the_models_silence_is_trimmed_to_short_margins() -> None:
    rate = kokoro_tts.SAMPLE_RATE
    tone = 0.5 * np.sin(np.arange(rate // 2) * 2 * np.pi * 220 / rate).astype(np.float32)
    audio = np.concatenate([np.zeros(int(0.33 * rate), np.float32), tone, np.zeros(int(0.45 * rate), np.float32)])
    trimmed = trim_silence(audio)
    assert trimmed.size / rate == pytest.approx(0.5 + kokoro_tts.LEAD_S + kokoro_tts.TAIL_S, abs=0.011)
    assert trim_silence(np.zeros(rate, np.float32)).size == 0


def test_device_picks_the_onnxruntime_provider() -> None:
    assert providers_for("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ("cpu", ["CPUExecutionProvider"])
    assert providers_for("auto", ["CPUExecutionProvider"]) == ("cpu", ["CPUExecutionProvider"])
    assert providers_for("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "cuda"
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        providers_for("cuda", ["CPUExecutionProvider"])


# ---- the engine around a fake onnxruntime session ---------------------------------------------------------------
class FakeInput:
    def __init__(self, name: str) -> None:
        self.name = name


class FakeSession:
    """Records the feeds; answers with 0.3 s silence, a tone as long as the tokens (longer when slower), 0.4 s."""

    calls: ClassVar[list[dict[str, np.ndarray]]] = []

    def __init__(self, path: str, sess_options: Any = None, providers: list[str] | None = None) -> None:
        self.providers = providers

    def get_inputs(self) -> list[FakeInput]:
        return [FakeInput("tokens"), FakeInput("style"), FakeInput("speed")]

    def run(self, outputs: Any, feeds: dict[str, np.ndarray], run_options: Any = None) -> list[np.ndarray]:
        FakeSession.calls.append(feeds)
        rate = kokoro_tts.SAMPLE_RATE
        n = int(feeds["tokens"].shape[1] * 0.06 * rate / float(feeds["speed"][0]))
        tone = 0.8 * np.sin(np.arange(n) * 2 * np.pi * 200 / rate)
        return [np.concatenate([np.zeros(int(0.3 * rate)), tone, np.zeros(int(0.4 * rate))]).astype(np.float32)]


@pytest.fixture
def fake_kokoro(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KokoroTTS:
    import onnxruntime

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    monkeypatch.setattr(onnxruntime, "InferenceSession", FakeSession)
    FakeSession.calls = []
    model = tmp_path / "model.onnx"
    model.write_bytes(b"fake")
    return KokoroTTS(TTSSettings(engine="kokoro", kokoro_model=str(model), device="cpu"), tmp_path, threads=1)


def test_model_inputs_are_padded_tokens_the_length_row_and_the_speed(fake_kokoro: KokoroTTS) -> None:
    assert isinstance(fake_kokoro, TextToSpeech) and fake_kokoro.sample_rate == 24000
    pcm = fake_kokoro.synthesize("I hear you.")
    feeds = FakeSession.calls[-1]
    tokens = feeds["tokens"]
    assert tokens.dtype == np.int64 and tokens.shape[0] == 1
    assert tokens[0, 0] == 0 and tokens[0, -1] == 0 and 0 not in tokens[0, 1:-1]
    assert tokens[0, 1:-1].tolist() == tokenize(fake_kokoro.phonemes("I hear you."), VOCAB)
    n = tokens.shape[1] - 2
    expected_row = load_voice(VOICES / "af_heart.bin")[n - 1]
    np.testing.assert_array_equal(feeds["style"], expected_row[None, :])
    assert feeds["speed"].dtype == np.float32 and float(feeds["speed"][0]) == 1.0
    assert pcm.dtype == np.int16 and pcm.size < (0.06 * (n + 2) + 0.2) * 24000  # the padding silence was trimmed


def test_sadness_is_slower_and_softer_and_speed_is_bounded(fake_kokoro: KokoroTTS) -> None:
    neutral = fake_kokoro.synthesize("Let's take this one small step at a time.")
    sad = fake_kokoro.synthesize("Let's take this one small step at a time.", "sadness")
    assert float(FakeSession.calls[-1]["speed"][0]) == pytest.approx(0.88)
    assert sad.size > neutral.size * 1.08
    assert np.abs(sad.astype(np.int32)).max() < np.abs(neutral.astype(np.int32)).max()
    fake_kokoro.synthesize("Hello.", speed=9.0)
    assert float(FakeSession.calls[-1]["speed"][0]) == kokoro_tts.MAX_SPEED
    assert fake_kokoro.synthesize("   ").size == 0


def test_another_voice_for_one_call(fake_kokoro: KokoroTTS) -> None:
    assert fake_kokoro.has_voice("am_michael") and not fake_kokoro.has_voice("no_such_voice")
    fake_kokoro.synthesize("Hello there.", voice="am_michael")
    n = FakeSession.calls[-1]["tokens"].shape[1] - 2
    np.testing.assert_array_equal(FakeSession.calls[-1]["style"][0], load_voice(VOICES / "am_michael.bin")[n - 1])
    with pytest.raises(ValueError, match="no_such_voice"):
        fake_kokoro.synthesize("Hello.", voice="no_such_voice")


def test_missing_model_or_voice_fails_at_load_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="prepare_models"):
        KokoroTTS(TTSSettings(engine="kokoro"), tmp_path)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"fake")
    with pytest.raises(ValueError, match=r"tts\.kokoro_voice"):
        KokoroTTS(TTSSettings(engine="kokoro", kokoro_model=str(model), kokoro_voice="zz_nobody"), tmp_path)


def test_engine_kokoro_is_selectable_in_the_config() -> None:
    from backend.services.model_service import _tts_loader

    settings = Settings(tts=TTSSettings(engine="kokoro"))
    label, _loader = _tts_loader(settings)
    assert "Kokoro" in label and "af_heart" in label


# ---- the real model ---------------------------------------------------------------------------------------------
def _words(text: str) -> list[str]:
    numbers = {"90": "ninety", "3": "three"}
    return [numbers.get(w, w) for w in re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()]


@pytest.mark.integration
def test_real_model_speaks_a_sentence_whisper_understands() -> None:
    from backend.core.audio_utils import STT_RATE, resample
    from backend.engines.whisper_stt import WhisperSTT

    settings = Settings()
    path = kokoro_tts.default_model_path(settings.cache_dir)
    if not path.is_file():
        pytest.skip(f"no Kokoro model at {path}: run CLARITY_TTS__ENGINE=kokoro python -m scripts.prepare_models")
    tts = KokoroTTS(settings.tts.model_copy(update={"engine": "kokoro"}), settings.cache_dir, threads=2)
    sentence = "Let's write down three small things you can do before the weekend."
    pcm = tts.synthesize(sentence)
    assert tts.sample_rate == 24000 and pcm.dtype == np.int16
    seconds = pcm.size / tts.sample_rate
    assert 2.0 < seconds < 6.0, seconds  # 12 words at a natural pace
    assert np.abs(pcm.astype(np.int32)).max() > 3000  # speech, not silence

    stt = WhisperSTT(settings.stt)
    heard = stt.transcribe(resample(pcm.astype(np.float32) / 32768.0, tts.sample_rate, STT_RATE)).text
    said, got = _words(sentence), set(_words(heard))
    assert sum(w in got for w in said) >= 0.8 * len(said), heard
