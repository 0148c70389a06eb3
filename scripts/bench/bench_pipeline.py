"""Voice-pipeline benchmark on the real default models: a real-time paced WebSocket client against a running
server, compared with the one-shot CLI (scripts/voice_inference.py) answering the same clip.

    python -m scripts.bench.bench_pipeline [--turns 6] [--port 2399]

Prints a table and writes scripts/bench/results/pipeline.{json,png}. Timings are this machine's; never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

from backend.config import REPO_ROOT
from backend.core.audio_utils import espeak

PROMPTS = [
    "I feel really stressed about my exam tomorrow.",
    "My manager ignored my idea again in the meeting and I am so annoyed.",
    "I got the job I wanted and I can hardly believe it.",
    "I have two offers and I do not know which one to take.",
    "Since my dog died the house feels so empty.",
    "I keep putting off my thesis and I do not know how to start.",
]
OUT = REPO_ROOT / "scripts" / "bench" / "results"


async def one_turn(url: str, pcm: np.ndarray, rate: int, interrupt_after: float | None = None) -> dict[str, float]:
    import websockets

    chunk = rate // 50  # 20 ms, real time
    result: dict[str, float] = {}
    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "config", "sample_rate": rate}))
        await ws.recv()

        async def send() -> None:
            for i in range(0, len(pcm), chunk):
                await ws.send(pcm[i : i + chunk].astype("<i2").tobytes())
                await asyncio.sleep(0.02)
            result["speech_end"] = time.monotonic()
            for _ in range(60):
                await ws.send(np.zeros(chunk, dtype="<i2").tobytes())
                await asyncio.sleep(0.02)

        sender = asyncio.create_task(send())
        first_audio = None
        interrupt_sent = None
        async for message in ws:
            now = time.monotonic()
            if isinstance(message, bytes):
                if first_audio is None:
                    first_audio = now
                if interrupt_after is not None and interrupt_sent is None and now - first_audio >= interrupt_after:
                    interrupt_sent = now
                    await ws.send(json.dumps({"type": "interrupt"}))
                elif interrupt_sent is not None:
                    result["late_frames"] = result.get("late_frames", 0) + 1
                continue
            event = json.loads(message)
            if event["type"] == "interrupted" and interrupt_sent is not None:
                result["interrupt_ack_ms"] = 1000 * (now - interrupt_sent)
                result["late_frames"] = 0  # frames before the ack were already in flight; count after it
                interrupt_sent = float("inf")
            if event["type"] == "metrics":
                result.update({k: v for k, v in event.items() if isinstance(v, int | float)})
            if event["type"] == "turn_end":
                break
        sender.cancel()
    if first_audio is not None:
        result["client_voice_to_voice_ms"] = 1000 * (first_audio - result["speech_end"])
    return result


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CLARITY_SERVER__PORT": str(port), "CLARITY_DB__DATA_DIR": tempfile.mkdtemp()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not start")


def old_cli(pcm: np.ndarray, rate: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "in.wav"
        sf.write(wav, pcm, rate)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "scripts.voice_inference", str(wav), "--out", str(Path(tmp) / "o.wav")],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        return 1000 * (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--port", type=int, default=2399)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    clips = [espeak(p) for p in PROMPTS[: args.turns]]
    proc = start_server(args.port)
    url = f"ws://127.0.0.1:{args.port}/ws/voice"
    try:
        turns = [asyncio.run(one_turn(url, pcm, rate)) for pcm, rate in clips]
        barge = [asyncio.run(one_turn(url, pcm, rate, interrupt_after=0.5)) for pcm, rate in clips[:3]]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    cli = [] if args.skip_cli else [old_cli(*clips[0]) for _ in range(2)]

    keys = [
        "voice_to_voice_ms",
        "client_voice_to_voice_ms",
        "stt_ms",
        "emotion_ms",
        "llm_first_token_ms",
        "llm_total_ms",
        "tts_first_audio_ms",
        "tokens",
    ]
    rows = {k: [t[k] for t in turns if k in t] for k in keys}
    rows["tokens_per_s"] = [t["tokens"] / (t["llm_total_ms"] / 1000) for t in turns if t.get("llm_total_ms")]
    rows["interrupt_ack_ms"] = [b["interrupt_ack_ms"] for b in barge if "interrupt_ack_ms" in b]
    rows["audio_frames_after_interrupted"] = [b.get("late_frames", 0) for b in barge]
    if cli:
        rows["old_cli_end_to_end_ms"] = cli
    print(f"\n{'metric':34s} {'median':>9s} {'min':>9s} {'max':>9s}  n")
    for key, values in rows.items():
        if values:
            print(f"{key:34s} {statistics.median(values):9.1f} {min(values):9.1f} {max(values):9.1f}  {len(values)}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pipeline.json").write_text(json.dumps({"turns": turns, "barge_in": barge, "old_cli_ms": cli}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = ["stt_ms", "emotion_ms", "llm_first_token_ms", "tts_first_audio_ms"]
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = np.zeros(len(turns))
    for stage in stages:
        values = np.array([t.get(stage, 0.0) for t in turns])
        ax.bar(range(len(turns)), values, bottom=bottom, label=stage)
        bottom += values
    ax.plot(range(len(turns)), [t.get("voice_to_voice_ms", 0) for t in turns], "k^", label="voice_to_voice_ms")
    ax.set_xlabel("turn")
    ax.set_ylabel("ms")
    ax.set_title("ClarityMentor per-turn latency (2 CPU cores, real-time client)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "pipeline.png", dpi=100)
    print(f"\nsaved {OUT / 'pipeline.json'} and {OUT / 'pipeline.png'}")


if __name__ == "__main__":
    main()
