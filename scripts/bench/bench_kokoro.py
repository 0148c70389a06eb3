"""Kokoro-82M synthesis speed on this machine, next to espeak-ng: per-sentence time and real-time factor.

    python -m scripts.bench.bench_kokoro [--repeats 5] [--threads 1,2]

For a 4-word clause (the reply pipeline's first chunk can be one) and a 12-word sentence: the median wall time of
``synthesize`` (espeak-ng phonemes + model + trimming), of the phonemes alone, the seconds of audio returned
(after trimming the model's ~0.75 s of padding silence) and of the raw model output, and RTF = time / audio.
Writes scripts/bench/results/kokoro.json (git-ignored). Timings are this machine's; never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

from backend.config import REPO_ROOT, Settings
from backend.engines.espeak_tts import EspeakTTS
from backend.engines.kokoro_phonemes import tokenize
from backend.engines.kokoro_tts import KokoroTTS

SENTENCES = {
    "4 words": "I hear you, friend.",
    "12 words": "Let's write down three small things you can do before the weekend.",
}
OUT = REPO_ROOT / "scripts" / "bench" / "results" / "kokoro.json"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the espeak-ng calls)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn``. On a busy machine the CPU time is the better estimate of what the
    call costs on an idle one (with one thread, idle wall time ~= CPU time)."""
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), cpu_seconds()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(cpu_seconds() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    settings = Settings()
    tts_settings = settings.tts.model_copy(update={"engine": "kokoro"})
    rows: list[dict[str, object]] = []
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    espeak = EspeakTTS(settings.tts)
    for label, text in SENTENCES.items():
        espeak.synthesize(text)
        seconds, cpu = median_time(partial(espeak.synthesize, text), args.repeats)
        audio = espeak.synthesize(text).size / espeak.sample_rate
        rows.append({"engine": "espeak-ng", "threads": 1, "sentence": label, "synth_s": seconds, "cpu_s": cpu,
                     "audio_s": audio, "rtf": seconds / audio})
    for threads in (int(t) for t in args.threads.split(",")):
        start = time.perf_counter()
        tts = KokoroTTS(tts_settings, settings.cache_dir, threads)
        load_s = time.perf_counter() - start
        tts.synthesize("Warm up.")
        for label, text in SENTENCES.items():
            seconds, cpu = median_time(partial(tts.synthesize, text), args.repeats)
            phonemes_s, _ = median_time(partial(tts.phonemes, text), args.repeats)
            audio = tts.synthesize(text).size / tts.sample_rate
            tokens = tokenize(tts.phonemes(text), tts._vocab)
            raw = tts._infer(tokens, tts._load_voice(tts_settings.kokoro_voice), 1.0).size / tts.sample_rate
            rows.append({"engine": "kokoro", "threads": threads, "sentence": label, "synth_s": seconds,
                         "cpu_s": cpu, "phonemes_s": phonemes_s, "audio_s": audio, "raw_audio_s": raw,
                         "rtf": seconds / audio, "rtf_raw": seconds / raw, "load_s": load_s})
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    nan = float("nan")
    print(f"{'engine':10} {'thr':>3} {'sentence':9} {'synth s':>8} {'cpu s':>6} {'phon s':>7} {'audio s':>8} "
          f"{'raw s':>6} {'RTF':>5} {'RTF raw':>7}")
    for r in rows:
        print(f"{r['engine']:10} {r['threads']:>3} {r['sentence']:9} {r['synth_s']:>8.3f} {r['cpu_s']:>6.3f} "
              f"{r.get('phonemes_s', nan):>7.3f} {r['audio_s']:>8.2f} {r.get('raw_audio_s', nan):>6.2f} "
              f"{r['rtf']:>5.2f} {r.get('rtf_raw', nan):>7.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
