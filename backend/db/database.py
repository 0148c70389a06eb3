"""Async engine and session factory (SQLite file by default, PostgreSQL via DATABASE_URL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as DBSession


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    return engine


MIGRATIONS = Path(__file__).parent / "migrations"


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    tables = set(inspect(connection).get_table_names())
    if "sessions" in tables and "alembic_version" not in tables:
        command.stamp(config, "0001")  # a database made before migrations existed: adopt it as revision 0001
    command.upgrade(config, "head")


MIGRATION_LOCK_ID = 0x434C4D01  # PostgreSQL advisory lock: one migrating process at a time


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the latest Alembic revision (creates it on an empty database).

    On PostgreSQL a transaction-scoped advisory lock serialises processes started together (several workers,
    or a prestart step racing a server): the second one waits, then finds the schema current."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        await conn.run_sync(_upgrade)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[DBSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
