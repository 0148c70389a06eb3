"""Conversation history in the database: sessions, turns, emotion timeline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.ext.asyncio import AsyncSession as DBSession

from backend.core.exceptions import SessionNotFound
from backend.db.database import make_engine, migrate, session_factory
from backend.db.tables import SessionRow, TurnRow, utcnow


@dataclass(frozen=True, slots=True)
class StoredTurn:
    role: str
    content: str
    emotion: dict[str, Any] | None
    timestamp: datetime
    interrupted: bool
    safety: bool
    turn_id: str | None


@dataclass(frozen=True, slots=True)
class StoredSession:
    session_id: str
    created_at: datetime
    turns: list[StoredTurn]


def _as_turn(row: TurnRow) -> StoredTurn:
    return StoredTurn(
        role=row.role,
        content=row.content,
        emotion=row.emotion,
        timestamp=row.timestamp,
        interrupted=row.interrupted,
        safety=row.safety,
        turn_id=row.turn_id,
    )


class SessionService:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions: async_sessionmaker[DBSession] = session_factory(engine)

    @classmethod
    async def open(cls, url: str, *, echo: bool = False) -> SessionService:
        engine = make_engine(url, echo=echo)
        await migrate(engine)
        return cls(engine)

    async def close(self) -> None:
        await self._engine.dispose()

    async def create(self, session_id: str | None = None) -> StoredSession:
        row = SessionRow(id=session_id or str(uuid.uuid4()), created_at=utcnow())
        async with self._sessions.begin() as db:
            db.add(row)
        return StoredSession(session_id=row.id, created_at=row.created_at, turns=[])

    async def exists(self, session_id: str) -> bool:
        async with self._sessions() as db:
            return await db.get(SessionRow, session_id) is not None

    async def get(self, session_id: str, *, last_turns: int | None = None) -> StoredSession:
        async with self._sessions() as db:
            row = await db.get(SessionRow, session_id)
            if row is None:
                raise SessionNotFound(f"session {session_id!r} not found")
            query = select(TurnRow).where(TurnRow.session_id == session_id).order_by(TurnRow.id.desc())
            if last_turns is not None:
                query = query.limit(last_turns)
            turns = [_as_turn(t) for t in reversed((await db.scalars(query)).all())]
            return StoredSession(session_id=row.id, created_at=row.created_at, turns=turns)

    async def add_turn(
        self,
        session_id: str,
        role: str,
        content: str,
        *,
        emotion: dict[str, Any] | None = None,
        interrupted: bool = False,
        safety: bool = False,
        turn_id: str | None = None,
    ) -> StoredTurn:
        row = TurnRow(
            session_id=session_id,
            role=role,
            content=content,
            emotion=emotion,
            interrupted=interrupted,
            safety=safety,
            turn_id=turn_id,
            timestamp=utcnow(),
        )
        async with self._sessions.begin() as db:
            session = await db.get(SessionRow, session_id)
            if session is None:
                raise SessionNotFound(f"session {session_id!r} not found")
            session.updated_at = row.timestamp
            db.add(row)
        return _as_turn(row)

    async def delete(self, session_id: str) -> None:
        async with self._sessions.begin() as db:
            if await db.get(SessionRow, session_id) is None:
                raise SessionNotFound(f"session {session_id!r} not found")
            await db.execute(delete(TurnRow).where(TurnRow.session_id == session_id))
            await db.execute(delete(SessionRow).where(SessionRow.id == session_id))
