"""The server process on fake engines, for tests that must kill or signal a real one:

    python -m tests.fake_server --port 8123 --db sqlite+aiosqlite:////tmp/x.db [--token-delay 0.03]

It runs exactly as ``python -m backend`` does (same uvicorn configuration: graceful shutdown, pings, frame cap);
only the engines are the fakes from tests/fakes.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from backend.__main__ import uvicorn_config
from backend.config import Settings
from backend.core.logging import configure_logging
from backend.main import create_app
from tests.fakes import FakeLLM, fake_engines

LONG_REPLY = (
    "That sounds really stressful. Let's slow it down together and pick one small thing for tonight. "
    "Maybe write the three topics you fear most on a card and look at them once before bed. "
    "Then close the books, breathe slowly and get some proper sleep, because rest helps memory. "
    "Tomorrow morning, read the card again and remind yourself how much you already prepared."
)


def __getattr__(name: str) -> FastAPI:
    """``tests.fake_server:app`` for ``uvicorn --workers N``: fake engines, everything else from the environment
    (DATABASE_URL, REDIS_URL, CLARITY_*) exactly as ``backend.main:app`` reads it."""
    if name != "app":
        raise AttributeError(name)
    settings = Settings()
    configure_logging(settings.server)
    engines = fake_engines(llm=FakeLLM(LONG_REPLY, token_delay_s=float(os.environ.get("FAKE_TOKEN_DELAY", "0"))))
    return create_app(settings, engine_loader=lambda _s: engines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/clarity-fake-cache"))  # noqa: S108
    parser.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args()
    settings = Settings(
        db={"url": args.db},
        cache_dir=args.cache,
        server={"host": "127.0.0.1", "port": args.port, "log_format": "text", "shutdown_grace_s": 5},
    )
    configure_logging(settings.server)
    engines = fake_engines(llm=FakeLLM(LONG_REPLY, token_delay_s=args.token_delay))
    server = uvicorn.Server(uvicorn_config(create_app(settings, engine_loader=lambda _s: engines), settings.server))
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
