"""A real uvicorn server on 127.0.0.1 (a free port) in a background thread, for clients that need a socket: the
``openai`` package, the client library, anything that is not Starlette's TestClient."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
