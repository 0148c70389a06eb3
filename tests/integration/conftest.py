from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from backend.config import default_cache_dir
from backend.main import create_app
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def espeak(text: str, voice: str = "en-gb-x-rp", speed: int = 150) -> tuple[np.ndarray, int]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is not installed (make test installs it)")
    wav = subprocess.run([exe, "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True, check=True).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="int16")
    return np.asarray(audio, dtype=np.int16), int(rate)


@pytest.fixture(scope="session")
def real_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real default models (the same config `make run` uses), on a throwaway SQLite database."""
    tmp: Path = tmp_path_factory.mktemp("integration")
    settings = make_settings(tmp)
    settings.cache_dir = default_cache_dir()  # reuse the prepared models
    with TestClient(create_app(settings)) as client:
        yield client
