from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend.config import default_cache_dir
from backend.core.audio_utils import espeak as speak_with_espeak
from backend.main import create_app
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def espeak(text: str) -> tuple[np.ndarray, int]:
    try:
        return speak_with_espeak(text)
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def real_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real default models (the same config `make run` uses), on a throwaway SQLite database."""
    tmp: Path = tmp_path_factory.mktemp("integration")
    settings = make_settings(tmp)
    settings.cache_dir = default_cache_dir()  # reuse the prepared models
    with TestClient(create_app(settings)) as client:
        yield client
