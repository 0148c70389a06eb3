"""Prestart step: ``python -m backend.db.migrate`` brings the configured database to the latest schema once,
before any worker starts (workers then skip it with ``CLARITY_DB__MIGRATE_ON_START=false``)."""

from __future__ import annotations

import asyncio
import sys

from backend.config import Settings
from backend.db.database import make_engine, migrate


async def _run(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def main() -> int:
    settings = Settings()
    asyncio.run(_run(settings.sqlalchemy_url))
    print(f"database schema is current ({settings.sqlalchemy_url.split('@')[-1]})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
