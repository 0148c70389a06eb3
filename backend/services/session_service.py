"""Conversation history in the database: sessions, turns, emotion timeline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.ext.asyncio import AsyncSession as DBSession

from backend.core.exceptions import SessionNotFound
from backend.db.database import make_engine, migrate, session_factory
from backend.db.tables import SessionRow, TurnRow, utcnow
from backend.models.emotion import EmotionData

Outcome = Literal["completed", "interrupted", "failed", "disconnected"]


@dataclass(frozen=True, slots=True)
class StoredTurn:
    role: str
    content: str
    emotion: EmotionData | None
    timestamp: datetime
    interrupted: bool
    safety: bool
    turn_id: str | None
    outcome: str | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class StoredSession:
    session_id: str
    created_at: datetime
    turns: list[StoredTurn]


@dataclass(frozen=True, slots=True)
class SessionSummary:
    session_id: str
    created_at: datetime
    updated_at: datetime
    turns: int


def _as_turn(row: TurnRow) -> StoredTurn:
    return StoredTurn(
        role=row.role,
        content=row.content,
        emotion=EmotionData.model_validate(row.emotion) if row.emotion else None,
        timestamp=row.timestamp,
        interrupted=row.interrupted,
        safety=row.safety,
        turn_id=row.turn_id,
        outcome=row.outcome,
        error_code=row.error_code,
    )


class SessionService:
    """Sessions belong to an owner (a digest of the API key that created them; None without keys): every call
    that names a session takes the caller's owner, and another owner's session is "not found"."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions: async_sessionmaker[DBSession] = session_factory(engine)

    @classmethod
    async def open(cls, url: str, *, echo: bool = False, run_migrations: bool = True) -> SessionService:
        engine = make_engine(url, echo=echo)
        if run_migrations:
            await migrate(engine)
        return cls(engine)

    async def close(self) -> None:
        await self._engine.dispose()

    async def create(self, session_id: str | None = None, *, owner: str | None = None) -> StoredSession:
        now = utcnow()
        row = SessionRow(id=session_id or str(uuid.uuid4()), created_at=now, updated_at=now, owner=owner)
        async with self._sessions.begin() as db:
            db.add(row)
        return StoredSession(session_id=row.id, created_at=row.created_at, turns=[])

    @staticmethod
    async def _owned(db: DBSession, session_id: str, owner: str | None) -> SessionRow:
        row = await db.get(SessionRow, session_id)
        if row is None or row.owner != owner:
            raise SessionNotFound(f"session {session_id!r} not found")
        return row

    async def exists(self, session_id: str, *, owner: str | None = None) -> bool:
        async with self._sessions() as db:
            row = await db.get(SessionRow, session_id)
            return row is not None and row.owner == owner

    async def list_sessions(self, *, owner: str | None = None, limit: int = 50) -> list[SessionSummary]:
        """The owner's sessions, most recently active first, with their turn counts."""
        counts = select(TurnRow.session_id, func.count(TurnRow.id).label("n")).group_by(TurnRow.session_id)
        sub = counts.subquery()
        query = (
            select(SessionRow, func.coalesce(sub.c.n, 0))
            .outerjoin(sub, sub.c.session_id == SessionRow.id)
            .where(SessionRow.owner.is_(None) if owner is None else SessionRow.owner == owner)
            .order_by(SessionRow.updated_at.desc())
            .limit(limit)
        )
        async with self._sessions() as db:
            rows = (await db.execute(query)).all()
        return [SessionSummary(r.id, r.created_at, r.updated_at, int(n)) for r, n in rows]

    async def get(self, session_id: str, *, last_turns: int | None = None, owner: str | None = None) -> StoredSession:
        """The session as its owner may see it (another owner's session is "not found")."""
        return await self._read(session_id, last_turns, owner, check_owner=True)

    async def recent(self, session_id: str, last_turns: int) -> StoredSession:
        """For the service itself (the prompt of a turn already authorized): no owner check."""
        return await self._read(session_id, last_turns, None, check_owner=False)

    async def _read(
        self, session_id: str, last_turns: int | None, owner: str | None, *, check_owner: bool
    ) -> StoredSession:
        async with self._sessions() as db:
            row = await self._owned(db, session_id, owner) if check_owner else await db.get(SessionRow, session_id)
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
        emotion: EmotionData | None = None,
        safety: bool = False,
        turn_id: str | None = None,
        outcome: Outcome | None = None,
        error_code: str | None = None,
    ) -> StoredTurn:
        row = TurnRow(
            session_id=session_id,
            role=role,
            content=content,
            emotion=emotion.model_dump(mode="json") if emotion is not None else None,
            interrupted=outcome == "interrupted",
            safety=safety,
            turn_id=turn_id,
            timestamp=utcnow(),
            outcome=outcome,
            error_code=error_code,
        )
        async with self._sessions.begin() as db:
            session = await db.get(SessionRow, session_id)
            if session is None:
                raise SessionNotFound(f"session {session_id!r} not found")
            session.updated_at = row.timestamp
            db.add(row)
        return _as_turn(row)

    async def delete(self, session_id: str, *, owner: str | None = None) -> None:
        async with self._sessions.begin() as db:
            await self._owned(db, session_id, owner)
            await db.execute(delete(TurnRow).where(TurnRow.session_id == session_id))
            await db.execute(delete(SessionRow).where(SessionRow.id == session_id))
