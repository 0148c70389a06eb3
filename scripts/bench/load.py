"""A bounded load test on loopback: text-chat and real-time voice sessions against the server run as the container
runs it (`python -m backend.db.migrate`, then `uvicorn backend.main:app --workers N`), for N in --workers.

    python -m scripts.bench.load [--workers 1 2] [--duration 30] [--text-duration 15]
                                 [--voice-sessions 1 2 4] [--text-clients 1 2 4] [--fake]

Needs PostgreSQL (postgresql://postgres@127.0.0.1:5432/test, trust auth) and Redis (127.0.0.1:6379, database 14)
on loopback, and the prepared models (`make models`). The REST limiter is lifted (100,000 requests per minute) so
that it does not throttle the benchmark. Default arguments: ~7 minutes on an idle 2-core box (estimated: each
voice scenario runs up to one turn, ~20 s, past its duration while the last turns finish); `--duration 40` on a busy
2-core box took 9.5 minutes (docs/capacity.md).

Scenarios, each for its duration (no new turn starts after it; turns in flight finish, bounded by a 90 s timeout):

- **text-chat**: C clients, each in its own session, POST /api/text-chat back to back (ten varied prompts);
  latency = request sent -> response received.
- **voice**: S WebSocket sessions (session i starts i seconds after the first), each speaking a pre-rendered
  espeak-ng utterance (ten prompts, two voices) in 20 ms chunks at real-time pace, then 0.8 s of silence, and
  letting the *server* endpoint the turn (no `end_of_speech`): its VAD ends it after 350-1200 ms of silence (600 ms
  by default, adapted), or 1 s after the audio stops. Then it waits for `turn_end` (reply audio arrives paced at
  real time, so a turn lasts as long as its spoken answer), thinks for 0.5 s and speaks the next prompt.
  latency = the real-time end of the user's speech (the moment the last voiced chunk's 20 ms have elapsed) -> first
  reply audio byte ("voice-to-voice", includes the end-of-turn wait), and -> `turn_end`.

Errors: HTTP status >= 400 or transport failures (text); `error` events, `turn_end` with an outcome other than
`completed`, dropped connections and timeouts (voice). Throughput = completed turns / scenario wall time (from the
first request until the last turn finished) in turns per minute.

Also recorded per scenario: CPU seconds of the server's process tree (/proc/<pid>/stat), of PostgreSQL + Redis, of
this client and of everything else on the machine (the box may be shared: other people's jobs show up there), the
load average before and after, and how many turns got the safety gate's fixed crisis reply instead of the LLM's.
RSS (VmRSS, VmHWM from /proc/<pid>/status) of every worker after start-up and after the load. CLARITY_* variables
set in the environment reach the server (e.g. CLARITY_THREADS__LLM_BATCH=1) and are recorded in the JSON.

Prints a table per worker count and writes scripts/bench/results/load.{json,png} (git-ignored) plus each server's
log as load-server-w<N>.log; `--name` changes the stem. `--fake` serves `tests.fake_server:app` (fake engines)
instead: a quick self-check of this script, not a capacity figure. Timings are this machine's; never asserted in
tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets

from backend.config import REPO_ROOT
from backend.core.audio_utils import espeak
from backend.test_client import ClarityMentorClient, ClientError
from scripts.bench.bench_pipeline import PROMPTS, VOICES

OUT = REPO_ROOT / "scripts" / "bench" / "results"
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/14"
STARTUP_TIMEOUT_S = 120.0
TRAILING_SILENCE_S = 0.8
THINK_S = 0.5
TURN_TIMEOUT_S = 90.0
VOICE_STAGGER_S = 1.0
READY_LINE = "All services initialized and ready"
TICKS = os.sysconf("SC_CLK_TCK")
# Error codes after which the server sends no turn_end for that utterance (it created no turn).
TURNLESS_ERRORS = frozenset({"no_speech", "busy"})


# ---- measurements ------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Sample:
    """One text request or voice turn; times in seconds from the scenario's start."""

    start_s: float
    end_s: float
    prompt: int = -1  # index into PROMPTS
    crisis: bool = False  # the safety gate answered with the fixed crisis message (no LLM, no long reply)
    latency_ms: float | None = None  # text: request -> response; voice: end of speech -> first reply audio
    turn_end_ms: float | None = None  # voice: end of speech -> turn_end
    transcript_ms: float | None = None  # voice: end of speech -> final transcript (end-of-turn wait + STT)
    server_voice_to_voice_ms: float | None = None  # voice: the server's own metric
    stages: dict[str, float] = field(default_factory=dict)  # voice: the numbers of the turn's `metrics` event
    error: str | None = None


@dataclass(slots=True)
class ScenarioResult:
    scenario: str  # "text-chat" or "voice"
    concurrency: int
    wall_s: float
    samples: list[Sample] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    loadavg_before: str = ""
    loadavg_after: str = ""

    def ok(self, key: str = "latency_ms") -> list[float]:
        return [v for s in self.samples if s.error is None and (v := getattr(s, key)) is not None]

    @property
    def errors(self) -> list[str]:
        return [s.error for s in self.samples if s.error is not None]

    def summary(self) -> dict[str, Any]:
        done = self.ok()
        per_min = 60 * len(done) / self.wall_s if self.wall_s > 0 else 0.0
        row: dict[str, Any] = {
            "scenario": self.scenario,
            "concurrency": self.concurrency,
            "turns": len(done),
            "throughput_per_min": per_min,
            "errors": len(self.errors),
            "error_kinds": sorted(set(self.errors)),
            "crisis_turns": sum(s.crisis for s in self.samples if s.error is None),
            **stats(done),
        }
        if self.scenario == "voice":
            for key in ("turn_end_ms", "transcript_ms", "server_voice_to_voice_ms"):
                row[key] = stats(self.ok(key))
        if done:
            row["server_cpu_s_per_turn"] = self.cpu.get("server_s", 0.0) / len(done)
        return row


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "max_ms": float("nan")}
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "max_ms": float(max(values)),
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def process_tree(root: int) -> list[int]:
    """root and every descendant (uvicorn's supervisor, its spawned workers, their helpers)."""
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                queue.extend(int(c) for c in (task / "children").read_text().split())
    return pids


def tree_cpu_s(root: int) -> float:
    """utime + stime (+ reaped children's) of every live process under root, in seconds."""
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores) since boot: /proc/stat, minus idle and iowait."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICKS


def services_cpu_s() -> float:
    """CPU seconds of the PostgreSQL and Redis server processes (shared with anyone else using them)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            if text[text.index("(") + 1 : text.rindex(")")] in ("postgres", "redis-server"):
                total += sum(int(v) for v in text.rsplit(")", 1)[1].split()[11:15])
    return total / TICKS


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def worker_memory(root: int, workers: int) -> list[dict[str, Any]]:
    """VmRSS/VmHWM (MB) of each process of the server; `worker` marks the ones that serve (and load models)."""
    rows = []
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = _status(pid)
            is_worker = pid == root if workers == 1 else "spawn_main" in cmdline
            rows.append(
                {
                    "pid": pid,
                    "worker": is_worker,
                    "cmd": cmdline.strip()[:100],
                    "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
                    "hwm_mb": int(fields["VmHWM"].split()[0]) / 1024,
                }
            )
    return rows


# ---- the server --------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "CLARITY_DB__MIGRATE_ON_START": "false",
        "CLARITY_SECURITY__REQUESTS_PER_MINUTE": "100000",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def start_server(workers: int, fake: bool, log_path: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    """Migrate once, then uvicorn with `workers` processes; returns (process, base URL, seconds until every
    worker said it was ready). The log (stdout + stderr of both steps) goes to log_path."""
    env = server_env()
    port = free_port()
    log = log_path.open("wb")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "backend.db.migrate"], cwd=REPO_ROOT, env=env, stdout=log, stderr=log, check=True
    )
    app = "tests.fake_server:app" if fake else "backend.main:app"
    cmd = [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--ws-max-size", "1048576", "--timeout-graceful-shutdown", "8",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = started + STARTUP_TIMEOUT_S
    healthy = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} while starting; see {log_path}")
        if not healthy:
            with contextlib.suppress(httpx.HTTPError):
                healthy = httpx.get(f"{url}/api/health", timeout=2).status_code == 200
        # /api/health answers as soon as one worker is up: wait until every worker printed its ready line.
        if healthy and log_path.read_text(errors="replace").count(READY_LINE) >= workers:
            return proc, url, time.monotonic() - started
        time.sleep(0.5)
    stop_server(proc)
    raise SystemExit(f"server not ready after {STARTUP_TIMEOUT_S:.0f} s; see {log_path}")


def stop_server(proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


# ---- clients -----------------------------------------------------------------------------------------------------
async def text_client(url: str, index: int, t0: float, deadline: float, samples: list[Sample]) -> None:
    """Back-to-back text turns in one session of its own."""
    session_id: str | None = None
    async with ClarityMentorClient(url, timeout_s=TURN_TIMEOUT_S) as client:
        turn = 0
        while time.monotonic() < deadline:
            prompt = (3 * index + turn) % len(PROMPTS)
            turn += 1
            start = time.monotonic()
            sample = Sample(start_s=start - t0, end_s=0.0, prompt=prompt)
            try:
                reply = await client.text_chat(PROMPTS[prompt], session_id)
                session_id = str(reply["session_id"])
                sample.crisis = bool(reply.get("safety"))
                sample.latency_ms = 1000 * (time.monotonic() - start)
            except ClientError as exc:
                sample.error = f"http_{exc.status}_{exc.code}"
            except httpx.HTTPError as exc:
                sample.error = type(exc).__name__
            sample.end_s = time.monotonic() - t0
            samples.append(sample)
            if sample.error is not None:
                await asyncio.sleep(0.5)  # do not spin on a failing server


async def voice_turn(client: ClarityMentorClient, speech: np.ndarray, prompt: int, t0: float) -> Sample:
    """Speak `speech` at real-time pace, then silence; collect the answer until turn_end."""
    start = time.monotonic()
    sample = Sample(start_s=start - t0, end_s=0.0, prompt=prompt)
    speech_end: float | None = None

    async def speak() -> None:
        nonlocal speech_end
        await client.send_audio(speech)  # paced against the clock: returns when the last chunk's 20 ms are over
        speech_end = time.monotonic()
        await client.send_silence(TRAILING_SILENCE_S)

    sender = asyncio.create_task(speak())
    first_audio = transcript_at = turn_end = None
    try:
        async with asyncio.timeout(TURN_TIMEOUT_S):
            while True:
                event = await client.next_event()
                now = time.monotonic()
                if event is None:
                    sample.error = f"dropped_{client.close_code}"
                    break
                if event.type == "audio":
                    first_audio = first_audio or now
                elif event.type == "transcript":
                    transcript_at = now
                elif event.type == "safety":
                    sample.crisis = True
                elif event.type == "metrics":
                    sample.stages = {k: float(v) for k, v in event.data.items() if isinstance(v, int | float)}
                    sample.server_voice_to_voice_ms = sample.stages.get("voice_to_voice_ms")
                elif event.type == "error":
                    code = str(event.data.get("code"))
                    sample.error = sample.error or f"ws_{code}"
                    if code in TURNLESS_ERRORS:
                        break
                elif event.type == "turn_end":
                    turn_end = now
                    outcome = str(event.data.get("outcome", "completed"))
                    if outcome != "completed":
                        sample.error = sample.error or f"outcome_{outcome}"
                    break
    except TimeoutError:
        sample.error = "timeout"
    if sample.error is not None and not sender.done():
        sender.cancel()
    with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
        await sender
    if speech_end is not None:
        for name, at in (("latency_ms", first_audio), ("turn_end_ms", turn_end), ("transcript_ms", transcript_at)):
            if at is not None:
                setattr(sample, name, 1000 * (at - speech_end))
    if sample.error is None and sample.latency_ms is None:
        sample.error = "no_reply_audio"
    sample.end_s = time.monotonic() - t0
    return sample


async def voice_client(
    url: str,
    index: int,
    clips: list[np.ndarray],
    rate: int,
    t0: float,
    deadline: float,
    samples: list[Sample],
) -> None:
    """One conversation: turn after turn on one socket (reconnecting only after a dropped one)."""
    await asyncio.sleep(index * VOICE_STAGGER_S)
    client: ClarityMentorClient | None = None
    turn = 0
    try:
        while time.monotonic() < deadline:
            if client is None:
                client = ClarityMentorClient(url, timeout_s=30)
                try:
                    await client.connect(sample_rate=rate)
                except (ClientError, OSError, TimeoutError, websockets.WebSocketException) as exc:
                    now = time.monotonic() - t0
                    code = exc.code if isinstance(exc, ClientError) else type(exc).__name__
                    samples.append(Sample(start_s=now, end_s=now, error=f"connect_{code}"))
                    await client.close()
                    client = None
                    await asyncio.sleep(1.0)
                    continue
            clip = (3 * index + turn) % len(clips)
            sample = await voice_turn(client, clips[clip], clip % len(PROMPTS), t0)
            turn += 1
            samples.append(sample)
            if sample.error is not None and (sample.error == "timeout" or sample.error.startswith("dropped")):
                await client.close()
                client = None
            await asyncio.sleep(THINK_S)
    finally:
        if client is not None:
            await client.close()


async def run_scenario(
    kind: str, url: str, concurrency: int, duration_s: float, server_pid: int, clips: list[np.ndarray], rate: int
) -> ScenarioResult:
    samples: list[Sample] = []
    before = loadavg()
    cpu0 = (tree_cpu_s(server_pid), own_cpu_s(), services_cpu_s(), machine_busy_s())
    t0 = time.monotonic()
    deadline = t0 + duration_s
    if kind == "text-chat":
        jobs = [text_client(url, i, t0, deadline, samples) for i in range(concurrency)]
    else:
        jobs = [voice_client(url, i, clips, rate, t0, deadline, samples) for i in range(concurrency)]
    await asyncio.gather(*jobs)
    wall = time.monotonic() - t0
    server_s, client_s, services_s, busy_s = (
        now - then
        for now, then in zip(
            (tree_cpu_s(server_pid), own_cpu_s(), services_cpu_s(), machine_busy_s()), cpu0, strict=True
        )
    )
    cpu = {
        "server_s": server_s,
        "client_s": client_s,
        "pg_redis_s": services_s,
        "machine_busy_s": busy_s,
        "server_cores": server_s / wall,
        "client_cores": client_s / wall,
        "pg_redis_cores": services_s / wall,
        "other_cores": max(0.0, busy_s - server_s - client_s - services_s) / wall,
    }
    return ScenarioResult(kind, concurrency, wall, sorted(samples, key=lambda s: s.start_s), cpu, before, loadavg())


# ---- report ------------------------------------------------------------------------------------------------------
HEADER = (
    f"{'scenario':22s} {'conc':>4s} {'turns':>5s} {'turns/min':>9s} {'p50 ms':>7s} {'p95 ms':>7s} {'max ms':>7s} "
    f"{'errors':>6s} {'srv CPU s/turn':>14s} {'srv cores':>9s} {'pg+redis':>8s} {'client':>6s} {'other':>5s}"
)


def format_rows(result: ScenarioResult) -> list[str]:
    row = result.summary()
    name = "text-chat" if result.scenario == "text-chat" else "voice -> 1st audio"
    cpu_turn = row.get("server_cpu_s_per_turn", float("nan"))
    lines = [
        f"{name:22s} {result.concurrency:>4d} {row['turns']:>5d} {row['throughput_per_min']:>9.1f} "
        f"{row['p50_ms']:>7.0f} {row['p95_ms']:>7.0f} {row['max_ms']:>7.0f} {row['errors']:>6d} "
        f"{cpu_turn:>14.2f} {result.cpu['server_cores']:>9.2f} {result.cpu['pg_redis_cores']:>8.2f} "
        f"{result.cpu['client_cores']:>6.2f} {result.cpu['other_cores']:>5.2f}"
    ]
    if result.scenario == "voice":
        end = row["turn_end_ms"]
        lines.append(
            f"{'voice -> turn_end':22s} {'':>4s} {'':>5s} {'':>9s} "
            f"{end['p50_ms']:>7.0f} {end['p95_ms']:>7.0f} {end['max_ms']:>7.0f}"
        )
    if row["error_kinds"]:
        lines.append(f"{'':22s} errors: {', '.join(row['error_kinds'])}")
    if row["crisis_turns"]:
        lines.append(f"{'':22s} {row['crisis_turns']} of the turns got the safety gate's crisis reply (no LLM)")
    return lines


def print_report(run: dict[str, Any], results: list[ScenarioResult]) -> None:
    print(
        f"\nworkers={run['workers']}  start-up {run['startup_s']:.1f} s  "
        f"load avg before {run['loadavg_before']}, after {run['loadavg_after']}"
    )
    print(HEADER)
    for result in results:
        for line in format_rows(result):
            print(line)
    print(
        "(latency: text = request -> response; voice = end of speech -> first reply audio byte / turn_end. "
        "cores = average CPU cores busy during the scenario: the server's processes, PostgreSQL + Redis, this "
        "client, everything else on the machine)"
    )
    for when in ("memory_after_startup", "memory_after_load"):
        workers = [p for p in run[when] if p["worker"]]
        print(
            f"{when.replace('_', ' ')}: workers' VmRSS "
            + " + ".join(f"{p['rss_mb']:.0f}" for p in workers)
            + f" = {sum(p['rss_mb'] for p in workers):.0f} MB (peak VmHWM "
            + " + ".join(f"{p['hwm_mb']:.0f}" for p in workers)
            + f" MB); whole tree {sum(p['rss_mb'] for p in run[when]):.0f} MB"
        )


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for col, kind in enumerate(("text-chat", "voice")):
        ticks: set[int] = set()
        for run in runs:
            rows = [r for r in run["scenarios"] if r["summary"]["scenario"] == kind]
            conc = [r["summary"]["concurrency"] for r in rows]
            ticks.update(conc)
            label = f"{run['workers']} worker(s)"
            for q, style in (("p50_ms", "o-"), ("p95_ms", "s--")):
                axes[0][col].plot(conc, [r["summary"][q] for r in rows], style, label=f"{label} {q[:3]}")
            axes[1][col].plot(conc, [r["summary"]["throughput_per_min"] for r in rows], "o-", label=label)
        what = "request -> response" if kind == "text-chat" else "end of speech -> first reply audio"
        axes[0][col].set_title(f"{kind}: latency ({what})")
        axes[0][col].set_ylabel("ms")
        axes[1][col].set_title(f"{kind}: throughput")
        axes[1][col].set_ylabel("completed turns / min")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xlabel("concurrent clients" if kind == "text-chat" else "concurrent voice sessions")
            ax.set_xticks(sorted(ticks))
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle(f"ClarityMentor load test, {os.cpu_count()} CPU cores, loopback")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render_clips() -> tuple[list[np.ndarray], int]:
    """The prompts spoken by espeak-ng, trimmed after the last voiced sample (the client adds its own silence)."""
    clips, rates = [], set()
    for voice in VOICES:
        for prompt in PROMPTS:
            pcm, rate = espeak(prompt, voice=voice)
            voiced = np.flatnonzero(np.abs(pcm) > 300)
            clips.append(pcm[: int(voiced[-1]) + 1] if voiced.size else pcm)
            rates.add(rate)
    if len(rates) != 1:
        raise SystemExit(f"espeak-ng voices disagree on the sample rate: {sorted(rates)}")
    return clips, rates.pop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn worker counts to test")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per voice scenario")
    parser.add_argument("--text-duration", type=float, default=15.0, help="seconds per text-chat scenario")
    parser.add_argument("--voice-sessions", type=int, nargs="*", default=[1, 2, 4], help="none: skip voice")
    parser.add_argument("--text-clients", type=int, nargs="*", default=[1, 2, 4], help="none: skip text-chat")
    parser.add_argument("--fake", action="store_true", help="serve tests.fake_server:app (self-check only)")
    parser.add_argument("--name", default=None, help="results file stem (default: load, or load-fake with --fake)")
    args = parser.parse_args(argv)

    OUT.mkdir(parents=True, exist_ok=True)
    stem = args.name or ("load-fake" if args.fake else "load")
    began = datetime.now(UTC)
    load_start = loadavg()
    print(f"load test {began:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores; load average at start: {load_start}")
    clips, rate = render_clips()
    lengths = [len(c) / rate for c in clips]
    print(f"{len(clips)} utterances, {min(lengths):.1f}-{max(lengths):.1f} s of speech at {rate} Hz")
    runs: list[dict[str, Any]] = []
    for workers in args.workers:
        log_path = OUT / f"{stem}-server-w{workers}.log"
        before = loadavg()
        proc, url, startup_s = start_server(workers, args.fake, log_path)
        print(f"\nworkers={workers}: ready in {startup_s:.1f} s at {url} (log: {log_path.name})", flush=True)
        results: list[ScenarioResult] = []
        try:
            memory_idle = worker_memory(proc.pid, workers)
            plan = [("text-chat", c, args.text_duration) for c in args.text_clients]
            plan += [("voice", s, args.duration) for s in args.voice_sessions]
            for kind, concurrency, duration in plan:
                result = asyncio.run(run_scenario(kind, url, concurrency, duration, proc.pid, clips, rate))
                results.append(result)
                row = result.summary()
                print(
                    f"  {kind:9s} x{concurrency}: {row['turns']} turns in {result.wall_s:.0f} s, "
                    f"p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, errors {row['errors']}",
                    flush=True,
                )
            memory_load = worker_memory(proc.pid, workers)
        finally:
            exit_code = stop_server(proc)
        run = {
            "workers": workers,
            "url": url,
            "startup_s": startup_s,
            "exit_code": exit_code,
            "loadavg_before": before,
            "loadavg_after": loadavg(),
            "memory_after_startup": memory_idle,
            "memory_after_load": memory_load,
            "scenarios": [{"summary": r.summary(), **asdict(r)} for r in results],
        }
        runs.append(run)
        print_report(run, results)
    load_end = loadavg()
    print(f"\nload average at start: {load_start}; at end: {load_end}")
    report = {
        "date_utc": began.isoformat(timespec="seconds"),
        "command": " ".join(["python -m scripts.bench.load", *(argv if argv is not None else sys.argv[1:])]),
        "cores": os.cpu_count(),
        "fake": args.fake,
        "settings": {
            "trailing_silence_s": TRAILING_SILENCE_S,
            "think_s": THINK_S,
            "voice_stagger_s": VOICE_STAGGER_S,
            "end_of_turn": "server endpointing (no end_of_speech)",
            "duration_s": args.duration,
            "text_duration_s": args.text_duration,
            "env_overrides": {k: v for k, v in os.environ.items() if k.startswith("CLARITY_")},
        },
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "runs": runs,
    }
    (OUT / f"{stem}.json").write_text(json.dumps(report, indent=2))
    plot(runs, OUT / f"{stem}.png")
    print(f"saved {OUT / (stem + '.json')} and {OUT / (stem + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
