"""Endpointing benchmark: false cut-offs and added delay on utterances with natural mid-sentence pauses.

    python -m scripts.bench.bench_endpointing

Each utterance is spoken by two espeak-ng voices with SSML pauses inside the sentence (500-900 ms, where people
hesitate: after a comma, "and", "because", "um"), followed by 2 s of silence; a few have no pause (delay only).
The audio goes through the real Silero VAD and the service's Endpointer in 32 ms frames, as /ws/voice feeds it.
Policies compared: fixed end-of-turn silence
(400, 600, 800, 1000 ms), the adaptive rules (dangling word, punctuation, speaking rate) and the served policy,
rules combined with the LLM's P(sentence finished) (llama.cpp), re-timed from real Whisper partial transcripts
every 700 ms of speech and at the start of each pause, as the WebSocket session does, and that policy with Smart
Turn v3.2's acoustic P(turn complete) as a third vote, scored once per pause at its onset (as the TurnTaker does).
Transcripts and scores are memoised on their exact input, so policies that see the same audio share the work.
A false cut-off is an utterance that ended before the speaker finished; added delay is true end of speech ->
end of turn. Prints a table, saves a plot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from backend.config import REPO_ROOT, Settings, VADSettings
from backend.core.audio_utils import STT_RATE, espeak, resample
from backend.engines.silero_vad import SileroVAD
from backend.engines.whisper_stt import WhisperSTT
from backend.services.endpointing import Endpointer, combined_end_silence_ms
from backend.services.turn_taking import PARTIAL_INTERVAL_MS, PAUSE_PARTIAL_MS

T = TypeVar("T")


def memoised(fn: Callable[[np.ndarray], T]) -> Callable[[np.ndarray], T]:
    """The same audio gives the same result (greedy Whisper, deterministic ONNX): compute it once per bench run."""
    seen: dict[tuple[int, int], T] = {}

    def call(audio: np.ndarray) -> T:
        key = (audio.size, hash(audio.tobytes()))
        if key not in seen:
            seen[key] = fn(audio)
        return seen[key]

    return call


UTTERANCES = [
    'I have been thinking about changing jobs and <break time="700ms"/> I am not sure it is the right time.',
    'My sister called me yesterday because <break time="800ms"/> our dad is in the hospital again.',
    'The thing is <break time="600ms"/> I never really wanted to study law.',
    "Should I tell my manager about the mistake?",
    'I feel like um <break time="900ms"/> nobody at work listens to me.',
    'We moved to a new city last month and <break time="750ms"/> I still do not know anyone.',
    'I keep putting off the thesis, <break time="650ms"/> every single day.',
    "What is the best way to prepare for an interview?",
    'I was going to <break time="800ms"/> call her, but I got scared.',
    'My exam is tomorrow and <break time="500ms"/> I have not finished revising.',
    'Honestly <break time="700ms"/> I think I am just tired of everything at work.',
    "I got the promotion today!",
    'Can you help me decide between <break time="600ms"/> the two offers?',
    'It started when my friend <break time="850ms"/> stopped answering my messages.',
    "I need to make a plan for this week.",
    'When I wake up <break time="700ms"/> I already feel anxious about the day.',
    'After the meeting, <break time="800ms"/> my boss asked me to stay behind.',
    'If I take the job in Leeds, <break time="900ms"/> I will have to leave my friends.',
    'I told him that <break time="750ms"/> I needed more time.',
    "I am really proud of how the presentation went.",
]
VOICES = {"espeak en-GB RP (male)": "en-gb-x-rp", "espeak en-US f3 (female variant)": "en-us+f3"}
OUT = REPO_ROOT / "scripts" / "bench" / "results"


def speak(ssml: str, voice: str) -> tuple[np.ndarray, float]:
    pcm, rate = espeak(f"<speak>{ssml}</speak>", voice=voice, speed=160, ssml=True)
    speech = resample(pcm.astype(np.float32) / 32768.0, rate, STT_RATE)
    voiced = np.flatnonzero(np.abs(speech) > 0.01)
    end_s = (voiced[-1] + 1) / STT_RATE
    return np.concatenate([speech[: voiced[-1] + 1], np.zeros(2 * STT_RATE, dtype=np.float32)]), end_s


def run_policy(
    audio: np.ndarray,
    vad: SileroVAD,
    settings: VADSettings,
    stt: WhisperSTT | None,
    scorer: Callable[[str], float] | None = None,
    acoustic: Callable[[np.ndarray], float] | None = None,
) -> list[float]:
    """Times (s) at which utterances ended. Partials on the TurnTaker's schedule (pause onset + every 700 ms)."""
    ep = Endpointer(settings, vad.new_stream(), vad.frame_samples)
    ends: list[float] = []
    last_partial = 0.0
    pause_scores: dict[int, float] = {}  # acoustic P(complete) per pause (keyed by its speech end), at its onset
    for start in range(0, audio.size, 512):
        result = ep.feed(audio[start : start + 512])
        for _utt in result.utterances:
            ends.append(ep.position / STT_RATE)
            last_partial = 0.0
            ep.end_silence_ms = settings.end_silence_ms
        pause_started = ep.silence_ms >= PAUSE_PARTIAL_MS and ep.speech_ms > last_partial
        if stt is not None and ep.triggered and (ep.speech_ms - last_partial >= PARTIAL_INTERVAL_MS or pause_started):
            last_partial = ep.speech_ms
            text = stt.transcribe(ep.utterance_audio).text
            p_acoustic = None
            if acoustic is not None and ep.silence_ms >= PAUSE_PARTIAL_MS:
                if ep.last_speech_end not in pause_scores:
                    pause_scores[ep.last_speech_end] = acoustic(ep.utterance_audio)
                p_acoustic = pause_scores[ep.last_speech_end]
            if text:
                wps = len(text.split()) / max(ep.speech_ms / 1000, 0.5)
                p_end = scorer(text) if scorer is not None else None
                ep.end_silence_ms = combined_end_silence_ms(settings, text, wps, p_end, p_acoustic)
    return ends


def main() -> None:
    from functools import cache

    from backend.config import resolve_model_ref
    from backend.engines.llamacpp_llm import LlamaCppLLM
    from backend.engines.smart_turn import SmartTurn

    base = Settings()
    vad, stt = SileroVAD(base.vad), WhisperSTT(base.stt)
    llm = LlamaCppLLM(base.llm, base.cache_dir)
    smart_turn = SmartTurn(resolve_model_ref(base.vad.smart_turn_model), base.threads.turn)
    stt.transcribe = memoised(stt.transcribe)  # type: ignore[method-assign,assignment]
    sentence_end, acoustic = cache(llm.sentence_end_probability), memoised(smart_turn.probability)
    clips = [speak(u, voice) for voice in VOICES.values() for u in UTTERANCES]
    paused = [i for i, u in enumerate(UTTERANCES * len(VOICES)) if "<break" in u]
    policies: dict[str, tuple[VADSettings, str | None]] = {
        f"fixed {ms} ms": (
            base.vad.model_copy(
                update={
                    "adaptive": False,
                    "end_silence_ms": ms,
                    "min_end_silence_ms": min(ms, 350),
                    "max_end_silence_ms": max(ms, 1200),
                }
            ),
            None,
        )
        for ms in (400, 600, 800, 1000)
    }
    policies["adaptive rules (600 ms base)"] = (base.vad, "rules")
    policies["combined rules + LLM"] = (base.vad, "combined")
    policies["combined+acoustic (served)"] = (base.vad, "acoustic")
    rows: dict[str, dict[str, Any]] = {}
    per_voice: dict[str, dict[str, tuple[int, int, float | None]]] = {}
    for name, (vad_settings, kind) in policies.items():
        cutoffs, delays = 0, []
        scorer = sentence_end if kind in ("combined", "acoustic") else None
        voice_cut: dict[str, list[int]] = {v: [] for v in VOICES}
        voice_delay: dict[str, list[float]] = {v: [] for v in VOICES}
        for index, (audio, end_s) in enumerate(clips):
            voice = list(VOICES)[index // len(UTTERANCES)]
            score_audio = acoustic if kind == "acoustic" else None
            ends = run_policy(audio, vad, vad_settings, stt if kind else None, scorer, score_audio)
            if index in paused:
                voice_cut[voice].append(int(any(e < end_s for e in ends)))
            if any(e < end_s for e in ends) and index in paused:
                cutoffs += 1
            final = [e for e in ends if e >= end_s]
            if final:
                delays.append(1000 * (final[0] - end_s))
                voice_delay[voice].append(delays[-1])
        per_voice[name] = {
            v: (sum(voice_cut[v]), len(voice_cut[v]), float(np.median(voice_delay[v])) if voice_delay[v] else None)
            for v in VOICES
        }
        rows[name] = {
            "false_cutoffs": cutoffs,
            "utterances_with_pauses": len(paused),
            "utterances": len(clips),
            "median_added_delay_ms": float(np.median(delays)) if delays else None,
            "p90_added_delay_ms": float(np.percentile(delays, 90)) if delays else None,
            "per_voice": {
                v: {"false_cutoffs": c, "utterances_with_pauses": n, "median_added_delay_ms": d}
                for v, (c, n, d) in per_voice[name].items()
            },
        }
    print(f"\n{len(clips)} utterances ({len(paused)} with a mid-sentence pause), voices: {', '.join(VOICES)}")
    print(f"{'policy':30s} {'false cut-offs':>15s} {'median delay':>13s} {'p90 delay':>10s}")
    for name, row in rows.items():
        print(
            f"{name:30s} {row['false_cutoffs']:>7d} / {row['utterances_with_pauses']:<5d} "
            f"{row['median_added_delay_ms'] or 0:>11.0f}ms {row['p90_added_delay_ms'] or 0:>8.0f}ms"
        )
    for voice in VOICES:
        print(f"\n{voice}: {'false cut-offs':>15s} {'median delay':>13s}")
        for name in rows:
            c, n, d = per_voice[name][voice]
            print(f"  {name:30s} {c:>5d} / {n:<5d} {d or 0:>11.0f}ms")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "endpointing.json").write_text(json.dumps(rows, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, row in rows.items():
        ax.scatter(row["median_added_delay_ms"], row["false_cutoffs"], s=60)
        ax.annotate(name, (row["median_added_delay_ms"], row["false_cutoffs"]), fontsize=8)
    ax.set_xlabel("median added delay after speech ends (ms)")
    ax.set_ylabel(f"false cut-offs (of {len(paused)})")
    ax.set_title("End-of-turn policies on utterances with mid-sentence pauses")
    fig.tight_layout()
    fig.savefig(OUT / "endpointing.png", dpi=100)
    print(f"saved {OUT / 'endpointing.json'} and {OUT / 'endpointing.png'}")


if __name__ == "__main__":
    main()
