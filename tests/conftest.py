from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from backend.config import Settings
from backend.engines.protocols import EngineSet
from backend.main import create_app
from tests.fakes import fake_engines

POSTGRES_URL = os.environ.get("CLARITY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CLARITY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@functools.cache
def reachable(url: str) -> bool:
    """Whether the server a URL names accepts TCP connections (tests that need it skip otherwise)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=1):
            return True
    except OSError:
        return False


def require_server(url: str, what: str) -> None:
    if not reachable(url):
        pytest.skip(f"{what} is not reachable at {urlsplit(url).netloc}")


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "db": {"url": f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"},
        "cache_dir": tmp_path / "cache",
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def engines() -> EngineSet:
    return fake_engines()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client_factory(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Start an app on fake engines; returns a TestClient already inside the lifespan."""
    started: list[TestClient] = []

    def start(engines: EngineSet | None = None, settings: Settings | None = None) -> TestClient:
        eng = engines or fake_engines()
        app = create_app(settings or make_settings(tmp_path), engine_loader=lambda _s: eng)
        client = TestClient(app)
        client.__enter__()
        started.append(client)
        return client

    yield start
    for client in reversed(started):
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_factory: Callable[..., TestClient], engines: EngineSet) -> TestClient:
    return client_factory(engines)
