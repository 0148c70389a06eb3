"""`make bench`: the whole voice pipeline on the real default models, against a server started as `make run` does.

    python -m scripts.bench.bench_pipeline [--turns 20] [--eos-turns 10] [--sessions 1,2,4,8] [--skip-cli]

Real-time paced WebSocket clients (20 ms chunks, two espeak voices, ten prompts): voice-to-voice (last voiced
sample sent -> first reply audio byte received) with server endpointing and with the client's `end_of_speech`,
stage figures from the server's metrics, barge-in, a 1/2/4/8-session sweep (all starting at once), start-up time,
server RSS and peak RSS, llama.cpp alone on the same GGUF (reference tokens/s) and the one-shot CLI on the same
clip. A progress bar while it runs; prints tables and writes scripts/bench/results/pipeline.{json,png} (git-ignored).
Timings are this machine's; never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
    "My best friend moved away and I feel lonely at weekends.",
    "Should I tell my parents that I want to change my degree?",
    "I snapped at my partner this morning and I feel bad about it.",
    "Work has been so busy that I have not slept properly in weeks.",
]
VOICES = ("en-gb-x-rp", "en-us+f3")
OUT = REPO_ROOT / "scripts" / "bench" / "results"


async def one_turn(
    url: str, pcm: np.ndarray, rate: int, interrupt_after: float | None = None, end_of_speech: bool = False
) -> dict[str, float]:
    import websockets

    chunk = rate // 50  # 20 ms, real time
    result: dict[str, float] = {}
    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "config", "sample_rate": rate}))
        await ws.recv()

        voiced = np.flatnonzero(np.abs(pcm) > 300)
        last_voiced = int(voiced[-1]) if voiced.size else len(pcm)

        async def send() -> None:
            for i in range(0, len(pcm), chunk):
                await ws.send(pcm[i : i + chunk].astype("<i2").tobytes())
                if i <= last_voiced < i + chunk:
                    result["speech_end"] = time.monotonic()  # the last voiced sample just left
                await asyncio.sleep(0.02)
            result.setdefault("speech_end", time.monotonic())
            if end_of_speech:
                await ws.send(json.dumps({"type": "end_of_speech"}))
                return
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
            if event["type"] == "error":
                result["error"] = 1
                break
            if event["type"] == "turn_end":
                break
        sender.cancel()
    if first_audio is not None:
        result["client_voice_to_voice_ms"] = 1000 * (first_audio - result["speech_end"])
    return result


def start_server(port: int) -> tuple[subprocess.Popen[bytes], float]:
    """The server as `make run` starts it; returns the process and seconds until /api/health answered."""
    env = {**os.environ, "CLARITY_SERVER__PORT": str(port), "CLARITY_DB__DATA_DIR": tempfile.mkdtemp()}
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(480):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                if r.status == 200:
                    return proc, time.monotonic() - start
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise SystemExit("server did not start")


def rss_mb(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


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


def llama_standalone(tokens: int = 80) -> dict[str, float]:
    """llama.cpp alone on the served GGUF (the reference for the in-server figure): greedy, `tokens` tokens."""
    from llama_cpp import Llama

    from backend.config import Settings
    from backend.engines.gguf_export import GGUF_FILE, gguf_cache_dir

    settings = Settings()
    path = gguf_cache_dir(settings.llm, settings.cache_dir, settings.llm.gguf_quant) / GGUF_FILE
    out = {}
    for threads in (1, 2):
        llama = Llama(str(path), n_ctx=1024, n_threads=threads, n_threads_batch=2, verbose=False)
        prompt = llama.tokenize(
            b"<|im_start|>user\nI feel stressed about work.<|im_end|>\n<|im_start|>assistant\n", special=True
        )
        count, first = 0, 0.0
        for _token in llama.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0):
            count += 1
            if count == 1:
                first = time.perf_counter()
            if count > tokens:
                break
        out[f"llama.cpp standalone tok/s ({threads} thr)"] = tokens / (time.perf_counter() - first)
        llama.close()
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def sessions_at_once(url: str, clips: list[tuple[np.ndarray, int]], n: int) -> list[dict[str, float]]:
    """n real-time clients, each starting one turn at the same moment (different prompts)."""
    return list(await asyncio.gather(*(one_turn(url, *clips[i % len(clips)]) for i in range(n))))


def main() -> None:
    from tqdm import tqdm  # type: ignore[import-untyped]

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20, help="real-time turns with server endpointing")
    parser.add_argument("--eos-turns", type=int, default=10, help="turns ending with the client's end_of_speech")
    parser.add_argument("--sessions", default="1,2,4,8", help="concurrent-session sweep")
    parser.add_argument("--port", type=int, default=2399)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    sweep = [int(n) for n in args.sessions.split(",") if n]
    clips = [espeak(p, voice=v) for v in VOICES for p in PROMPTS]
    steps = args.turns + args.eos_turns + 3 + len(sweep) + (0 if args.skip_cli else 2) + 2
    bar = tqdm(total=steps, desc="bench", unit="step", dynamic_ncols=True)
    proc, startup_s = start_server(args.port)
    bar.update(1)
    url = f"ws://127.0.0.1:{args.port}/ws/voice"
    results: dict[str, object] = {"startup_s": startup_s}
    try:
        turns = []
        for i in range(args.turns):
            turns.append(asyncio.run(one_turn(url, *clips[i % len(clips)])))
            bar.update(1)
        eos = []
        for i in range(args.eos_turns):
            eos.append(asyncio.run(one_turn(url, *clips[(i + 3) % len(clips)], end_of_speech=True)))
            bar.update(1)
        barge = []
        for pcm, rate in clips[:3]:
            barge.append(asyncio.run(one_turn(url, pcm, rate, interrupt_after=0.5)))
            bar.update(1)
        sweep_rows = {}
        for n in sweep:
            got = asyncio.run(sessions_at_once(url, clips, n))
            v2v = [g["client_voice_to_voice_ms"] for g in got if "client_voice_to_voice_ms" in g]
            sweep_rows[n] = {
                "ok": len(v2v),
                "errors": sum(int(g.get("error", 0)) for g in got),
                "p50_ms": pct(v2v, 50),
                "p95_ms": pct(v2v, 95),
                "max_ms": max(v2v, default=float("nan")),
            }
            bar.update(1)
        memory = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    cli = []
    if not args.skip_cli:
        for _ in range(2):
            cli.append(old_cli(*clips[0]))
            bar.update(1)
    standalone = llama_standalone()
    bar.update(1)
    bar.close()

    keys = [
        "client_voice_to_voice_ms",
        "voice_to_voice_ms",
        "stt_ms",
        "emotion_ms",
        "llm_first_token_ms",
        "llm_total_ms",
        "tts_first_audio_ms",
        "tokens",
    ]
    rows = {k: [t[k] for t in turns if k in t] for k in keys}
    rows["llm_tokens_per_s"] = [t["tokens"] / (t["llm_total_ms"] / 1000) for t in turns if t.get("llm_total_ms")]
    rows["eos: client_voice_to_voice_ms"] = [
        t["client_voice_to_voice_ms"] for t in eos if "client_voice_to_voice_ms" in t
    ]
    rows["interrupt_ack_ms"] = [b["interrupt_ack_ms"] for b in barge if "interrupt_ack_ms" in b]
    rows["audio_frames_after_interrupted"] = [b.get("late_frames", 0) for b in barge]
    if cli:
        rows["old_cli_end_to_end_ms"] = cli
    print(f"\n{'metric (real-time client, 2 CPU cores)':40s} {'p50':>8s} {'p95':>8s} {'min':>8s} {'max':>8s}   n")
    for key, values in rows.items():
        if values:
            print(
                f"{key:40s} {pct(values, 50):8.1f} {pct(values, 95):8.1f} {min(values):8.1f} {max(values):8.1f}"
                f"  {len(values)}"
            )
    reused = sum(int(t.get("transcript_reused", 0)) for t in turns)
    print(f"pause transcript reused as final: {reused}/{len(turns)} turns")
    print(f"\n{'sessions at once':18s} {'ok':>4s} {'errors':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}")
    for n, row in sweep_rows.items():
        print(
            f"{n:<18d} {row['ok']:>4d} {row['errors']:>7d} {row['p50_ms']:8.0f} {row['p95_ms']:8.0f}"
            f" {row['max_ms']:8.0f}"
        )
    print(f"\nstart-up (process start -> /api/health 200): {startup_s:.1f} s")
    print(
        f"server memory after {len(turns) + len(eos) + len(barge) + sum(sweep)} turns: "
        f"RSS {memory['VmRSS']:.0f} MB, peak {memory['VmHWM']:.0f} MB"
    )
    for key, value in standalone.items():
        print(f"{key}: {value:.0f}")
    if rows["llm_tokens_per_s"]:
        print(
            f"in-server LLM tok/s p50 {pct(rows['llm_tokens_per_s'], 50):.0f}"
            " (includes sentence hand-off and TTS sharing the cores)"
        )
    if cli and rows["client_voice_to_voice_ms"]:
        ratio = pct(cli, 50) / pct(rows["client_voice_to_voice_ms"], 50)
        print(f"one-shot CLI end-to-end / server voice-to-voice p50: {ratio:.0f}x")
        results["cli_ratio"] = ratio
    results.update(
        turns=turns,
        eos_turns=eos,
        barge_in=barge,
        sessions=sweep_rows,
        memory_mb=memory,
        old_cli_ms=cli,
        llama_standalone=standalone,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pipeline.json").write_text(json.dumps(results, indent=2))
    plot(turns, sweep_rows)


def plot(turns: list[dict[str, float]], sweep_rows: dict[int, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = ["stt_ms", "emotion_ms", "llm_first_token_ms", "tts_first_audio_ms"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    bottom = np.zeros(len(turns))
    for stage in stages:
        values = np.array([t.get(stage, 0.0) for t in turns])
        ax.bar(range(len(turns)), values, bottom=bottom, label=stage)
        bottom += values
    ax.plot(
        range(len(turns)), [t.get("client_voice_to_voice_ms", 0) for t in turns], "k^", label="voice-to-voice (client)"
    )
    ax.set_xlabel("turn")
    ax.set_ylabel("ms")
    ax.set_title("Per-turn latency (2 CPU cores, real-time client)")
    ax.legend(fontsize=8)
    ns = list(sweep_rows)
    ax2.plot(ns, [sweep_rows[n]["p50_ms"] for n in ns], "o-", label="p50")
    ax2.plot(ns, [sweep_rows[n]["p95_ms"] for n in ns], "s-", label="p95")
    ax2.set_xlabel("concurrent voice sessions")
    ax2.set_ylabel("voice-to-voice ms")
    ax2.set_title("Concurrent sessions")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(OUT / "pipeline.png", dpi=100)
    print(f"\nsaved {OUT / 'pipeline.json'} and {OUT / 'pipeline.png'}")


if __name__ == "__main__":
    main()
