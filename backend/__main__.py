"""`python -m backend`: run the server on the configured host and port (default 127.0.0.1:2323).

To expose it beyond this machine set ``CLARITY_SERVER__HOST=0.0.0.0`` together with ``CLARITY_SECURITY__API_KEYS``
(and put TLS in front). SIGTERM closes voice sockets with 1012 after storing their in-flight turns and exits
within ``server.shutdown_grace_s`` + a second or two.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from backend.config import ServerSettings, Settings
from backend.core.logging import configure_logging
from backend.main import create_app


def uvicorn_config(app: FastAPI, server: ServerSettings) -> uvicorn.Config:
    """How the server process runs the app: pings, frame cap, and a bounded graceful shutdown."""
    return uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        log_level=server.log_level,
        log_config=None,  # keep our structured logging
        ws_max_size=server.max_frame_kb * 1024,  # a larger frame closes the socket with 1009
        ws_ping_interval=server.ping_interval_s,
        ws_ping_timeout=server.ping_interval_s,
        timeout_graceful_shutdown=max(1, int(server.shutdown_grace_s)),
    )


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"✗ invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.server)
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings.server))
    server.run()
    # uvicorn returns normally when the lifespan fails: never report success for a half-started server.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
