"""ModelService: loads every engine once (with the start-up banner) and owns their bounded executors."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from backend.config import Settings
from backend.core.exceptions import ModelLoadError
from backend.engines.protocols import (
    EndOfTurnAudio,
    EngineSet,
    LanguageModel,
    SpeechEmotion,
    SpeechToText,
    TextEmotion,
    TextToSpeech,
    VoiceActivity,
)
from backend.services.runner import BoundedRunner

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Step:
    label: str
    config_key: str


def _load(index: int, step: _Step, name: str, loader: Callable[[], T], timings: dict[str, float], key: str) -> T:
    print(f"[{index}/5] Loading {step.label} ({name})...", end=" ", flush=True)
    start = time.perf_counter()
    try:
        engine = loader()
    except Exception as exc:
        print("✗", flush=True)
        raise ModelLoadError(name, step.config_key, exc) from exc
    timings[key] = time.perf_counter() - start
    print(f"✓ ({timings[key]:.1f}s)", flush=True)
    return engine


def quiet_third_party_logs() -> None:
    """Keep the start-up banner readable: no per-tensor progress bars or info chatter from model libraries."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("sentence_transformers", "faster_whisper", "httpx", "huggingface_hub", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _llm_loader(settings: Settings) -> Callable[[], LanguageModel]:
    """The configured LLM engine; only the chosen one's libraries are imported (llama.cpp needs no torch)."""
    llm, cache, threads = settings.llm, settings.cache_dir, settings.threads.llm
    if llm.engine == "llamacpp":
        from backend.engines.llamacpp_llm import LlamaCppLLM

        return lambda: LlamaCppLLM(llm, cache, threads, settings.threads.llm_batch, settings.threads.turn)
    if llm.engine == "openai":
        from backend.engines.openai_llm import OpenAICompatLLM

        return lambda: OpenAICompatLLM(llm)
    if llm.engine == "ctranslate2":
        from backend.engines.ct2_llm import CT2LLM

        return lambda: CT2LLM(llm, cache, threads)
    from backend.engines.hf_llm import TransformersLLM

    return lambda: TransformersLLM(llm, cache, settings.threads.torch)


def _stt_loader(settings: Settings) -> tuple[str, Callable[[], SpeechToText]]:
    """(banner label, loader) of the configured STT engine."""
    stt = settings.stt
    if stt.engine == "openai":
        from backend.engines.openai_audio import OpenAISTT

        return f"{stt.api_model} at {stt.base_url}", lambda: OpenAISTT(stt)
    from backend.engines.whisper_stt import WhisperSTT

    return stt.display_name, lambda: WhisperSTT(stt, settings.threads.stt, settings.threads.stt_workers)


def _tts_loader(settings: Settings) -> tuple[str, Callable[[], TextToSpeech]]:
    """(banner label, loader) of the configured TTS engine."""
    tts = settings.tts
    if tts.engine == "openai":
        from backend.engines.openai_audio import OpenAITTS

        return f"{tts.api_model} at {tts.base_url}, voice {tts.voice}", lambda: OpenAITTS(tts)
    if tts.engine == "kokoro":
        from backend.engines.kokoro_tts import KokoroTTS

        label = f"Kokoro-82M, voice {tts.kokoro_voice}"
        return label, lambda: KokoroTTS(tts, settings.cache_dir, settings.threads.tts)
    from backend.engines.espeak_tts import EspeakTTS

    return f"espeak-ng, voice {tts.voice}", lambda: EspeakTTS(tts)


def load_engines(settings: Settings) -> EngineSet:
    """Load the configured engines. Blocking (seconds): called from the lifespan in a worker thread."""
    quiet_third_party_logs()
    from backend.engines.prosody import ProsodyEmotion
    from backend.engines.silero_vad import SileroVAD
    from backend.engines.text_emotion import MiniLMEmotion

    t: dict[str, float] = {}
    stt_label, stt_loader = _stt_loader(settings)
    stt: SpeechToText = _load(
        1,
        _Step("STT model", "stt.model"),
        stt_label,
        stt_loader,
        t,
        "stt",
    )
    safety = settings.safety
    crisis_path = safety.classifier_path if safety.enabled else None

    def emotion_models() -> tuple[TextEmotion, Any]:
        emotion = MiniLMEmotion(settings.emotion, settings.threads.emotion)
        if crisis_path is None:
            return emotion, None
        from backend.engines.crisis_head import CrisisClassifier

        threshold = safety.classifier_threshold
        return emotion, CrisisClassifier(crisis_path, settings.emotion.encoder, settings.threads.emotion, threshold)

    text_emotion, crisis = _load(
        2,
        _Step("emotion models", "emotion.head_path / safety.classifier_path"),
        "MiniLM-L6 + emotion head, crisis classifier, prosody" if crisis_path else "MiniLM-L6 + emotion head, prosody",
        emotion_models,
        t,
        "emotion",
    )
    speech_emotion: SpeechEmotion = ProsodyEmotion()
    llm: LanguageModel = _load(
        3,
        _Step("LLM", "llm.model / llm.adapter_path"),
        settings.llm.display_name,
        _llm_loader(settings),
        t,
        "llm",
    )
    tts_label, tts_loader = _tts_loader(settings)
    tts: TextToSpeech = _load(
        4,
        _Step("TTS", "tts.kokoro_model / tts.kokoro_voice" if settings.tts.engine == "kokoro" else "tts.voice"),
        tts_label,
        tts_loader,
        t,
        "tts",
    )
    vad: VoiceActivity = _load(
        5, _Step("VAD", "vad.engine"), "Silero", lambda: SileroVAD(settings.vad, settings.threads.vad), t, "vad"
    )
    end_of_turn = _load_end_of_turn(settings, t)
    return EngineSet(
        stt, vad, text_emotion, speech_emotion, llm, tts, load_seconds=t, crisis=crisis, end_of_turn=end_of_turn
    )


def _load_end_of_turn(settings: Settings, timings: dict[str, float]) -> EndOfTurnAudio | None:
    """Smart Turn, when enabled. Missing while enabled is a start-up error (ModelLoadError naming the fix), not a
    silent fallback: the end-of-turn policy would quietly get worse with nothing in the logs anyone reads."""
    vad = settings.vad
    if not vad.smart_turn:
        return None
    from backend.config import resolve_model_ref
    from backend.engines.smart_turn import INSTALL_HINT, SmartTurn

    def loader() -> EndOfTurnAudio:
        try:
            path = resolve_model_ref(vad.smart_turn_model)
        except ValueError as exc:  # the package is not installed
            raise FileNotFoundError(f"{exc}: {INSTALL_HINT}") from exc
        return SmartTurn(path, settings.threads.turn, vad.smart_turn_device)

    step = _Step("end-of-turn model", "vad.smart_turn_model (or vad.smart_turn: false)")
    return _load(5, step, "Smart Turn v3.2", loader, timings, "end_of_turn")


def warm_up(engines: EngineSet) -> None:
    """One tiny call per engine so the first real request does not pay for lazy initialisation."""
    import threading

    from backend.engines.protocols import ChatMessage

    silence = np.zeros(16000, dtype=np.float32)
    engines.stt.transcribe(silence)
    engines.vad.new_stream().speech_prob(np.zeros(engines.vad.frame_samples, dtype=np.float32))
    engines.text_emotion.predict(["hello"])
    engines.speech_emotion.analyze(silence, 16000, "")
    for _piece in engines.llm.stream([ChatMessage("user", "Hi")], 2, threading.Event()):
        pass
    engines.tts.synthesize("OK.")
    if engines.end_of_turn is not None:
        engines.end_of_turn.probability(silence)


class ModelService:
    """Every engine, loaded once, plus one bounded executor per engine (TTS: one worker; it is not thread-safe)."""

    def __init__(self, engines: EngineSet, settings: Settings) -> None:
        self.engines = engines
        self.settings = settings
        self.stt_runner = BoundedRunner(
            "stt", workers=settings.threads.stt_workers, max_pending=settings.stt.max_pending
        )
        self.emotion_runner = BoundedRunner("emotion", workers=2, max_pending=64)
        # llama.cpp batches concurrent replies in its own scheduler thread: one waiting worker per slot.
        # A remote (openai) server batches concurrent requests itself: as many in flight as llm.parallel.
        llm_workers = settings.llm.parallel if settings.llm.engine in ("llamacpp", "openai") else 1
        self.llm_runner = BoundedRunner("llm", workers=llm_workers, max_pending=settings.llm.max_pending + llm_workers)
        self.tts_runner = BoundedRunner("tts", workers=settings.threads.tts, max_pending=settings.tts.max_pending)
        self.vad_runner = BoundedRunner("vad", workers=2, max_pending=1024)
        # End-of-turn scoring: one small job per pause, never queued behind a long reply.
        self.turn_runner = BoundedRunner("turn", workers=1, max_pending=64)

    def describe(self) -> dict[str, dict[str, object]]:
        e = self.engines
        engines: dict[str, object] = {
            "stt": e.stt,
            "emotion": e.text_emotion,
            "speech_emotion": e.speech_emotion,
            "llm": e.llm,
            "tts": e.tts,
            "vad": e.vad,
        }
        return {
            key: {
                "name": getattr(engine, "name", key),
                "loaded": True,
                "load_seconds": e.load_seconds.get(key),
                "device": getattr(engine, "device", "cpu"),
            }
            for key, engine in engines.items()
        }

    def shutdown(self) -> None:
        for runner in (
            self.stt_runner,
            self.emotion_runner,
            self.llm_runner,
            self.tts_runner,
            self.vad_runner,
            self.turn_runner,
        ):
            runner.shutdown()
        self.engines.close()
