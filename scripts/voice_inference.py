"""The seed's one-shot CLI ("old CLI"), kept for the performance comparison: load every model, answer one WAV,
write the reply WAV, exit. It reuses the backend's engines and prompt code; nothing is copied.

    python -m scripts.voice_inference input.wav [--out reply.wav]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from backend.config import Settings
from backend.core.audio_utils import decode_audio_file, encode_wav
from backend.engines.protocols import ChatMessage
from backend.services.crisis import decide, guard_text, load_wording
from backend.services.fusion import fuse
from backend.services.model_service import load_engines
from backend.services.prompting import build_messages
from backend.services.safety import CrisisDetector


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wav", type=Path)
    parser.add_argument("--out", type=Path, default=Path("reply.wav"))
    args = parser.parse_args()
    settings = Settings()
    t_start = time.perf_counter()
    engines = load_engines(settings)
    t_loaded = time.perf_counter()
    audio, _duration = decode_audio_file(args.wav.read_bytes())
    text = engines.stt.transcribe(audio).text
    t_stt = time.perf_counter()
    reading = engines.speech_emotion.analyze(audio, 16000, text)
    emotion = fuse(engines.text_emotion.predict([text])[0], reading, speech_weight=settings.emotion.speech_weight)
    # The same crisis net as the server: rules OR classifier, the category's wording, the guard on the reply.
    decision = decide(CrisisDetector(), engines.crisis, text, []) if settings.safety.enabled else None
    if decision is not None and decision.category is not None:
        reply = load_wording(settings.safety.locale, settings.safety.resources_file).reply(decision.category)
    else:
        messages: list[ChatMessage] = build_messages(
            [],
            text,
            emotion,
            count_tokens=engines.llm.count_tokens,
            history_token_budget=settings.llm.history_token_budget,
        )
        raw = "".join(engines.llm.stream(messages, settings.llm.max_response_tokens, threading.Event())).strip()
        reply = guard_text(raw)
    t_llm = time.perf_counter()
    pcm = engines.tts.synthesize(reply, emotion["primary_emotion"])
    args.out.write_bytes(encode_wav(pcm, engines.tts.sample_rate))
    t_end = time.perf_counter()
    print(f"transcript: {text}\nemotion: {emotion['primary_emotion']} ({emotion['confidence']:.2f})\nreply: {reply}")
    print(
        f"timings: load {t_loaded - t_start:.2f}s, stt {t_stt - t_loaded:.2f}s, emotion+llm {t_llm - t_stt:.2f}s, "
        f"tts {t_end - t_llm:.2f}s, total {t_end - t_start:.2f}s (answer after load: {t_end - t_loaded:.2f}s)"
    )
    engines.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
