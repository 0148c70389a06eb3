"""Endpointing benchmark: false cut-offs and added delay on utterances with natural mid-sentence pauses.

    python -m scripts.bench.bench_endpointing

Each utterance is spoken by espeak-ng with SSML pauses inside the sentence (400-900 ms, where people hesitate:
after "and", "because", "um"), followed by 2 s of silence. The audio goes through the real Silero VAD and the
service's Endpointer in 32 ms frames, the way /ws/voice feeds it. Policies compared: fixed end-of-turn silence
(400, 600, 800, 1000 ms) and the adaptive policy, which re-times the end silence from real Whisper partial
transcripts every 700 ms of speech and at the start of each pause, as the WebSocket session does.
A false cut-off is an utterance that ended before the speaker finished; added delay is true end of speech ->
end of turn. Prints a table, saves a plot.
"""

from __future__ import annotations

import json

import numpy as np

from backend.config import REPO_ROOT, Settings, VADSettings
from backend.core.audio_utils import STT_RATE, espeak, resample
from backend.engines.silero_vad import SileroVAD
from backend.engines.whisper_stt import WhisperSTT
from backend.services.endpointing import Endpointer, adaptive_end_silence_ms

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
]
OUT = REPO_ROOT / "scripts" / "bench" / "results"


def speak(ssml: str) -> tuple[np.ndarray, float]:
    pcm, rate = espeak(f"<speak>{ssml}</speak>", speed=160, ssml=True)
    speech = resample(pcm.astype(np.float32) / 32768.0, rate, STT_RATE)
    voiced = np.flatnonzero(np.abs(speech) > 0.01)
    end_s = (voiced[-1] + 1) / STT_RATE
    return np.concatenate([speech[: voiced[-1] + 1], np.zeros(2 * STT_RATE, dtype=np.float32)]), end_s


def run_policy(audio: np.ndarray, vad: SileroVAD, settings: VADSettings, stt: WhisperSTT | None) -> list[float]:
    """Times (s) at which utterances ended."""
    ep = Endpointer(settings, vad.new_stream(), vad.frame_samples)
    ends: list[float] = []
    last_partial = 0.0
    for start in range(0, audio.size, 512):
        result = ep.feed(audio[start : start + 512])
        for _utt in result.utterances:
            ends.append(ep.position / STT_RATE)
            last_partial = 0.0
            ep.end_silence_ms = settings.end_silence_ms
        pause_started = ep.silence_ms >= 96 and ep.speech_ms > last_partial  # as VoiceSession._maybe_partial
        if stt is not None and ep.triggered and (ep.speech_ms - last_partial >= 700 or pause_started):
            last_partial = ep.speech_ms
            text = stt.transcribe(ep.utterance_audio).text
            if text:
                wps = len(text.split()) / max(ep.speech_ms / 1000, 0.5)
                ep.end_silence_ms = adaptive_end_silence_ms(settings, text, wps)
    return ends


def main() -> None:
    base = Settings()
    vad, stt = SileroVAD(base.vad), WhisperSTT(base.stt)
    clips = [speak(u) for u in UTTERANCES]
    policies: dict[str, tuple[VADSettings, bool]] = {
        f"fixed {ms} ms": (
            base.vad.model_copy(
                update={
                    "adaptive": False,
                    "end_silence_ms": ms,
                    "min_end_silence_ms": min(ms, 350),
                    "max_end_silence_ms": max(ms, 1200),
                }
            ),
            False,
        )
        for ms in (400, 600, 800, 1000)
    }
    policies["adaptive (600 ms base)"] = (base.vad, True)
    rows = {}
    for name, (vad_settings, adaptive) in policies.items():
        cutoffs, delays = 0, []
        for audio, end_s in clips:
            ends = run_policy(audio, vad, vad_settings, stt if adaptive else None)
            if any(e < end_s for e in ends):
                cutoffs += 1
            final = [e for e in ends if e >= end_s]
            if final:
                delays.append(1000 * (final[0] - end_s))
        rows[name] = {
            "false_cutoffs": cutoffs,
            "utterances": len(clips),
            "median_added_delay_ms": float(np.median(delays)) if delays else None,
            "p90_added_delay_ms": float(np.percentile(delays, 90)) if delays else None,
        }
    print(f"\n{'policy':26s} {'false cut-offs':>15s} {'median delay':>13s} {'p90 delay':>10s}")
    for name, row in rows.items():
        print(
            f"{name:26s} {row['false_cutoffs']:>7d} / {row['utterances']:<5d} "
            f"{row['median_added_delay_ms'] or 0:>11.0f}ms {row['p90_added_delay_ms'] or 0:>8.0f}ms"
        )
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
    ax.set_ylabel(f"false cut-offs (of {len(clips)})")
    ax.set_title("End-of-turn policies on utterances with mid-sentence pauses")
    fig.tight_layout()
    fig.savefig(OUT / "endpointing.png", dpi=100)
    print(f"saved {OUT / 'endpointing.json'} and {OUT / 'endpointing.png'}")


if __name__ == "__main__":
    main()
