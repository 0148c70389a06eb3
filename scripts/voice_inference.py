"""The seed's one-shot CLI ("old CLI"): load every model, answer one WAV, write the reply WAV, exit.

It runs the same turn lifecycle as the server (emotion, crisis net, reply guard, history in a throwaway
database), so what it says is what the service would say.

    python scripts/voice_inference.py input.wav [--out reply.wav]
    python -m scripts.voice_inference input.wav
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import tempfile
import time

from backend.config import Settings
from backend.core.audio_utils import decode_audio_file, encode_wav
from backend.services.container import Services
from backend.services.model_service import ModelService, load_engines
from backend.services.session_service import SessionService


async def answer(wav: Path, out: Path) -> int:
    settings = Settings()
    t_start = time.perf_counter()
    engines = await asyncio.to_thread(load_engines, settings)
    models = ModelService(engines, settings)
    t_loaded = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sessions = await SessionService.open(f"sqlite+aiosqlite:///{tmp}/cli.db")
        services = Services.build(settings, models, sessions)
        try:
            audio, _duration = await asyncio.to_thread(decode_audio_file, await asyncio.to_thread(wav.read_bytes))
            text = (await services.stt.transcribe(audio)).text.strip()
            t_stt = time.perf_counter()
            if not text:
                print("no speech found in the recording", file=sys.stderr)
                return 1
            session_id = (await sessions.create()).session_id
            mentor = services.mentor
            async with mentor.turn(session_id, text, audio) as turn:
                async for _sentence in mentor.sentences(turn):
                    pass
            t_llm = time.perf_counter()
            pcm = await services.tts.synthesize(turn.reply_text, engines.tts.sample_rate, turn.emotion.primary_emotion)
            await asyncio.to_thread(out.write_bytes, encode_wav(pcm, engines.tts.sample_rate))
        finally:
            await sessions.close()
            await services.limits.close()
            models.shutdown()
    t_end = time.perf_counter()
    e = turn.emotion
    safety = f"\nsafety: {turn.crisis_category}" if turn.crisis_category else ""
    print(f"transcript: {text}\nemotion: {e.primary_emotion} ({e.confidence:.2f}){safety}\nreply: {turn.reply_text}")
    print(
        f"timings: load {t_loaded - t_start:.2f}s, stt {t_stt - t_loaded:.2f}s, emotion+llm {t_llm - t_stt:.2f}s, "
        f"tts {t_end - t_llm:.2f}s, total {t_end - t_start:.2f}s (answer after load: {t_end - t_loaded:.2f}s)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("wav", type=Path)
    parser.add_argument("--out", type=Path, default=Path("reply.wav"))
    args = parser.parse_args()
    return asyncio.run(answer(args.wav, args.out))


if __name__ == "__main__":
    sys.exit(main())
