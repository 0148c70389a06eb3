"""A real uvicorn server on 127.0.0.1 (a free port) in a background thread, for clients that need a socket: the
``openai`` package, the client library, anything that is not Starlette's TestClient."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from backend.engines.protocols import EngineSet
from backend.main import create_app
from tests.conftest import make_settings


@contextmanager
def serve(app: FastAPI, *, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Run ``app`` (lifespan included) until the block ends; yields its base URL, ``http://127.0.0.1:PORT``."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def serve_fakes(tmp_path: Path, engines: EngineSet, **settings: Any) -> Iterator[tuple[str, FastAPI]]:
    """The app on fake engines and a SQLite file in ``tmp_path``; yields (base URL, app)."""
    app = create_app(make_settings(tmp_path, **settings), engine_loader=lambda _s: engines)
    with serve(app) as url:
        yield url, app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_healthy(base: str, procs: list[subprocess.Popen[Any]], timeout_s: float = 60.0) -> None:
    """Poll ``base``/api/health until it answers 200; fails if a server process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        dead = [p.args for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"the server at {base} did not start (exited: {dead})")
        time.sleep(0.1)
