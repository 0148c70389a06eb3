"""SessionService on SQLite (file in tmp) and PostgreSQL: storage, ordering, JSON, flags, delete, restart.

The PostgreSQL tables are shared with other runs, so every test works only on sessions it created (fresh uuids)
and deletes them afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.core.exceptions import SessionNotFound
from backend.models.emotion import EmotionData
from backend.services.session_service import SessionService, StoredSession
from tests.conftest import POSTGRES_URL, make_settings, require_server
from tests.fakes import FakeLLM, fake_engines

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def backend_url(kind: str, tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}" if kind == "sqlite" else POSTGRES_URL


def unique_id() -> str:
    return f"test-{uuid.uuid4()}"


async def _cleanup(url: str, ids: list[str]) -> None:
    if not ids:
        return
    service = await SessionService.open(url)
    try:
        for session_id in ids:
            try:
                await service.delete(session_id)
            except SessionNotFound:
                pass
    finally:
        await service.close()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        require_server(POSTGRES_URL, "PostgreSQL")
    return backend_url(request.param, tmp_path)


@pytest.fixture
async def created_ids(db_url: str) -> AsyncIterator[list[str]]:
    """Ids of sessions a test created; deleted at teardown (matters on the shared PostgreSQL database)."""
    ids: list[str] = []
    yield ids
    await _cleanup(db_url, ids)


@pytest.fixture
async def store(db_url: str, created_ids: list[str]) -> AsyncIterator[SessionService]:
    service = await SessionService.open(db_url)
    try:
        yield service
    finally:
        await service.close()


NewSession = Callable[[], Awaitable[str]]


@pytest.fixture
def new_session(store: SessionService, created_ids: list[str]) -> NewSession:
    async def make() -> str:
        session_id = unique_id()
        created_ids.append(session_id)
        stored = await store.create(session_id)
        assert stored.session_id == session_id
        assert stored.turns == []
        return session_id

    return make


def contents(stored: StoredSession) -> list[tuple[str, str]]:
    return [(t.role, t.content) for t in stored.turns]


# --- create / exists / get / add_turn --------------------------------------------------------------------------------


async def test_create_exists_and_get_empty(store: SessionService, new_session: NewSession) -> None:
    session_id = await new_session()
    assert await store.exists(session_id) is True
    assert await store.exists(unique_id()) is False
    stored = await store.get(session_id)
    assert stored.session_id == session_id
    assert stored.turns == []


async def test_create_without_id_generates_unique_ids(store: SessionService, created_ids: list[str]) -> None:
    first = await store.create()
    second = await store.create()
    created_ids.extend([first.session_id, second.session_id])
    assert first.session_id != second.session_id
    assert uuid.UUID(first.session_id)  # a uuid, not something guessable like a counter
    assert await store.exists(first.session_id) and await store.exists(second.session_id)


async def test_turns_come_back_in_the_order_they_were_added(store: SessionService, new_session: NewSession) -> None:
    session_id = await new_session()
    script = [("user", "first"), ("assistant", "second"), ("user", "third"), ("assistant", "fourth")]
    for role, text in script:
        await store.add_turn(session_id, role, text)
    stored = await store.get(session_id)
    assert contents(stored) == script
    stamps = [t.timestamp for t in stored.turns]
    assert stamps == sorted(stamps)


async def test_add_turn_returns_what_was_stored(store: SessionService, new_session: NewSession) -> None:
    session_id = await new_session()
    returned = await store.add_turn(session_id, "user", "hello", turn_id="t-1")
    assert (returned.role, returned.content, returned.turn_id) == ("user", "hello", "t-1")
    stored = (await store.get(session_id)).turns[0]
    assert (stored.role, stored.content, stored.turn_id) == ("user", "hello", "t-1")


async def test_emotion_json_round_trips(store: SessionService, new_session: NewSession) -> None:
    session_id = await new_session()
    emotion = EmotionData.model_validate(
        {
            "primary_emotion": "fear",
            "confidence": 0.7123,
            "scores": {"fear": 0.7123, "joy": 0.05, "neutral": 0.2377},
            "text": {"primary_emotion": "fear", "confidence": 0.7, "scores": {"fear": 0.7}},
            "speech": {"arousal": -0.25, "valence": 0.1, "confidence": 0.4, "features": {"pitch_hz": 181.5}},
            "incongruent": True,
        }
    )
    await store.add_turn(session_id, "user", "I feel stressed", emotion=emotion)
    await store.add_turn(session_id, "assistant", "reply")
    turns = (await store.get(session_id)).turns
    assert turns[0].emotion == emotion
    assert turns[1].emotion is None


async def test_interrupted_and_safety_flags_round_trip(store: SessionService, new_session: NewSession) -> None:
    session_id = await new_session()
    await store.add_turn(session_id, "user", "plain")
    await store.add_turn(session_id, "assistant", "cut off", outcome="interrupted")
    await store.add_turn(session_id, "user", "crisis", safety=True)
    await store.add_turn(session_id, "assistant", "both", outcome="interrupted", safety=True)
    await store.add_turn(session_id, "assistant", "half a repl", outcome="failed", error_code="model_error")
    turns = (await store.get(session_id)).turns
    flags = [(t.interrupted, t.safety) for t in turns]
    assert flags == [(False, False), (True, False), (False, True), (True, True), (False, False)]
    assert [(t.outcome, t.error_code) for t in turns][-2:] == [("interrupted", None), ("failed", "model_error")]


async def test_sessions_are_isolated(store: SessionService, new_session: NewSession) -> None:
    a, b = await new_session(), await new_session()
    await store.add_turn(a, "user", "for a")
    await store.add_turn(b, "user", "for b")
    await store.add_turn(a, "assistant", "reply a")
    assert contents(await store.get(a)) == [("user", "for a"), ("assistant", "reply a")]
    assert contents(await store.get(b)) == [("user", "for b")]


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
async def test_timestamps_read_back_as_written(kind: str, tmp_path: Path) -> None:
    url = backend_url(kind, tmp_path)
    service = await SessionService.open(url)
    session_id = unique_id()
    try:
        created = await service.create(session_id)
        written = await service.add_turn(session_id, "user", "when?")
        stored = await service.get(session_id)
        assert stored.created_at == created.created_at
        assert stored.turns[0].timestamp == written.timestamp
        assert stored.turns[0].timestamp.utcoffset() is not None
    finally:
        await service.delete(session_id)
        await service.close()


# --- last_turns ------------------------------------------------------------------------------------------------------


async def test_last_turns_returns_the_newest_in_chronological_order(
    store: SessionService, new_session: NewSession
) -> None:
    session_id = await new_session()
    other = await new_session()
    for i in range(6):
        await store.add_turn(session_id, "user" if i % 2 == 0 else "assistant", f"turn {i}")
        await store.add_turn(other, "user", f"noise {i}")  # interleaved rows of another session
    last_two = await store.get(session_id, last_turns=2)
    assert [t.content for t in last_two.turns] == ["turn 4", "turn 5"]
    last_three = await store.get(session_id, last_turns=3)
    assert [t.content for t in last_three.turns] == ["turn 3", "turn 4", "turn 5"]
    everything = await store.get(session_id, last_turns=100)
    assert [t.content for t in everything.turns] == [f"turn {i}" for i in range(6)]
    assert [t.content for t in (await store.get(session_id)).turns] == [f"turn {i}" for i in range(6)]


# --- delete and unknown sessions -------------------------------------------------------------------------------------


async def test_delete_removes_the_session_and_its_turns(store: SessionService, new_session: NewSession) -> None:
    session_id = await new_session()
    keep = await new_session()
    await store.add_turn(session_id, "user", "gone soon", emotion=EmotionData(primary_emotion="joy", confidence=0.9))
    await store.add_turn(session_id, "assistant", "bye")
    await store.add_turn(keep, "user", "stays")

    await store.delete(session_id)
    assert await store.exists(session_id) is False
    with pytest.raises(SessionNotFound):
        await store.get(session_id)
    with pytest.raises(SessionNotFound):
        await store.delete(session_id)
    # the turns went too: a new session under the same id starts empty
    await store.create(session_id)
    assert (await store.get(session_id)).turns == []
    assert contents(await store.get(keep)) == [("user", "stays")]


async def test_unknown_session_raises_session_not_found(store: SessionService) -> None:
    missing = unique_id()
    with pytest.raises(SessionNotFound) as info:
        await store.get(missing)
    assert info.value.code == "session_not_found" and info.value.status_code == 404
    with pytest.raises(SessionNotFound):
        await store.get(missing, last_turns=5)
    with pytest.raises(SessionNotFound):
        await store.add_turn(missing, "user", "into the void")
    with pytest.raises(SessionNotFound):
        await store.delete(missing)
    assert await store.exists(missing) is False  # add_turn did not create it


# --- restart ---------------------------------------------------------------------------------------------------------


async def test_history_survives_a_restart(db_url: str, created_ids: list[str]) -> None:
    first = await SessionService.open(db_url)
    try:
        session_id = unique_id()
        created_ids.append(session_id)
        await first.create(session_id)
        await first.add_turn(
            session_id,
            "user",
            "remember me",
            emotion=EmotionData(primary_emotion="sadness", confidence=0.61, scores={"sadness": 0.61}),
        )
        await first.add_turn(session_id, "assistant", "I will", outcome="interrupted", turn_id="t-9")
        await first.add_turn(session_id, "user", "crisis words", safety=True)
        before = await first.get(session_id)
    finally:
        await first.close()

    second = await SessionService.open(db_url)
    try:
        after = await second.get(session_id)
        assert after == before
        assert contents(after) == [("user", "remember me"), ("assistant", "I will"), ("user", "crisis words")]
        expected = EmotionData(primary_emotion="sadness", confidence=0.61, scores={"sadness": 0.61})
        assert after.turns[0].emotion == expected
        assert (after.turns[1].interrupted, after.turns[1].turn_id) == (True, "t-9")
        assert after.turns[2].safety is True
        await second.add_turn(session_id, "assistant", "still here")  # and it keeps accepting writes
        assert contents(await second.get(session_id))[-1] == ("assistant", "still here")
    finally:
        await second.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_app_restart_serves_the_same_history(
    kind: str, client_factory: Callable[..., TestClient], tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, db={"url": backend_url(kind, tmp_path)})
    first = client_factory(fake_engines(), settings)
    try:
        session_id = first.post("/api/sessions").json()["session_id"]
        assert first.post("/api/text-chat", json={"text": "I am stressed", "session_id": session_id}).status_code == 200
        assert first.post("/api/text-chat", json={"text": "so happy now", "session_id": session_id}).status_code == 200
        before = first.get(f"/api/sessions/{session_id}/history").json()
        assert len(before["turns"]) == 4
    finally:
        first.__exit__(None, None, None)

    engines = fake_engines()
    second = client_factory(engines, settings)
    try:
        response = second.get(f"/api/sessions/{session_id}/history")
        assert response.status_code == 200, response.text
        assert response.json() == before

        # the conversation carries on where it left off: the old turns reach the new process's model
        reply = second.post("/api/text-chat", json={"text": "what next?", "session_id": session_id})
        assert reply.status_code == 200, reply.text
        llm = engines.llm
        assert isinstance(llm, FakeLLM)
        prompt_text = "\n".join(m.content for m in llm.prompts[-1])
        assert "I am stressed" in prompt_text and "so happy now" in prompt_text
        assert len(second.get(f"/api/sessions/{session_id}/history").json()["turns"]) == 6
    finally:
        second.delete(f"/api/sessions/{session_id}")  # cleanup on the shared PostgreSQL database
