"""The seed's commands keep working as typed in its README: ``uvicorn backend.main:app`` serves, and
``python scripts/voice_inference.py <wav>`` (run as a file, not a module) answers a recording. Real models."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend.config import REPO_ROOT

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_uvicorn_backend_main_app_serves(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CLARITY_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "backend.main:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 180
            health: httpx.Response | None = None
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.25)
            assert health is not None, f"no answer from /api/health:\n{log.read_text()[-3000:]}"
            assert health.status_code == 200 and health.json()["status"] == "healthy"
            assert (tmp_path / "x.db").exists()  # the environment's database, not the default one
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_voice_inference_runs_as_a_file(tmp_path: Path) -> None:
    wav, reply = tmp_path / "question.wav", tmp_path / "reply.wav"
    espeak = shutil.which("espeak-ng")
    assert espeak is not None
    question = "I feel so stressed about my exam tomorrow."
    subprocess.run([espeak, "-v", "en-gb-x-rp", "-w", str(wav), question], check=True)
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "voice_inference.py"), str(wav), "--out", str(reply)],
        cwd=tmp_path,  # not the repo: the script must find the package by itself
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert "stressed" in lines["transcript"].lower()
    assert len(lines["reply"].split()) >= 3
    assert reply.stat().st_size > 1000
