"""`python -m backend`: run the server on the configured host and port (default 0.0.0.0:2323)."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from backend.config import Settings
from backend.main import create_app


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"✗ invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        ws_max_size=4 * 1024 * 1024,
    )
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns normally when the lifespan fails: never report success for a half-started server.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
