"""Browser tests: the app served by uvicorn on a free port in a background thread, driven by Debian's Chromium
through Playwright. Chromium's fake microphone plays a WAV made with espeak-ng, so the whole path is real:
getUserMedia -> AudioWorklet -> WebSocket -> models -> reply audio scheduled in an AudioContext.

Everything here is module-scoped at most: Playwright's sync API runs its own event loop, and the real models
take memory, so neither outlives the browser tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
import soundfile as sf
import soxr
import uvicorn
from fastapi import FastAPI

from backend.config import Settings, default_cache_dir
from backend.main import create_app
from tests.conftest import make_settings

CHROMIUM = Path(os.environ.get("CLARITY_TEST_CHROMIUM", "/usr/bin/chromium"))  # Debian's package
ARTIFACTS = Path(__file__).parent / "artifacts"
WAV_RATE = 16000
# Flags from the probe of this machine kind: no sandbox as root, and no background network traffic (the
# network is closed, and Chromium would otherwise retry Google's hosts).
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def _skip(reason: str) -> NoReturn:
    print(f"\nbrowser tests skipped: {reason}", flush=True)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_wav(path: Path, parts: list[str | float]) -> Path:
    """Sentences (spoken by espeak-ng) and pauses (seconds), in order, as one 16 kHz mono PCM16 WAV."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is missing (make system-deps installs it)")
    pieces: list[np.ndarray] = []
    for i, part in enumerate(parts):
        if isinstance(part, str):
            raw = path.with_name(f"{path.stem}-{i}.wav")
            subprocess.run([espeak, "-w", str(raw), part], check=True, capture_output=True, timeout=60)
            audio, rate = sf.read(raw, dtype="float32")
            pieces.append(soxr.resample(audio, rate, WAV_RATE) if rate != WAV_RATE else audio)
        else:
            pieces.append(np.zeros(int(part * WAV_RATE), dtype=np.float32))
    sf.write(path, np.concatenate(pieces), WAV_RATE, subtype="PCM_16")
    return path


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(app: FastAPI, startup_timeout_s: float = 180.0) -> LiveServer:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the app did not start (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail(f"the app did not start within {startup_timeout_s:.0f} s")
        time.sleep(0.05)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    """Playwright with Debian's Chromium; skips (saying why) when either is unusable here."""
    if not CHROMIUM.exists():
        _skip(f"{CHROMIUM} is missing (`make system-deps` installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _skip(f"playwright is not installed: {exc}")
    manager = sync_playwright()
    try:
        driver = manager.start()
    except Exception as exc:
        _skip(f"playwright could not start: {exc}")
    try:
        driver.chromium.launch(executable_path=str(CHROMIUM), args=BASE_ARGS).close()
    except Exception as exc:
        manager.__exit__(None, None, None)
        _skip(f"playwright cannot start {CHROMIUM}: {exc}")
    yield driver
    manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def real_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("browser"))
    settings.cache_dir = default_cache_dir()  # the models `make setup` prepared
    return settings


@pytest.fixture(scope="module")
def live_server(playwright_driver: Any, real_settings: Settings) -> Iterator[str]:
    """The app on the real default models (requested after Playwright, so a skip costs no model loading)."""
    running = start_server(create_app(real_settings))
    yield running.url
    running.stop()


@pytest.fixture(scope="module")
def wav_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wav")


@dataclass
class PageLog:
    """What the page said on its console, and its uncaught errors."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def problems(self, tolerated: Callable[[str], bool] = lambda _m: False) -> list[str]:
        return [m for m in self.console_errors if not tolerated(m)] + self.page_errors


@pytest.fixture
def open_client(playwright_driver: Any) -> Iterator[Callable[..., tuple[Any, PageLog]]]:
    """open_client(url, wav) -> (page, log): a fresh Chromium whose microphone plays ``wav``
    (``allow_mic=False``: the microphone permission is refused, as when a user says no)."""
    browsers: list[Any] = []

    def open_page(url: str, wav: Path, *, allow_mic: bool = True, width: int = 1280) -> tuple[Any, PageLog]:
        args = [*BASE_ARGS, f"--use-file-for-fake-audio-capture={wav}"]
        if allow_mic:
            args.append("--use-fake-ui-for-media-stream")  # answers the permission prompt with yes
        browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=args)
        browsers.append(browser)
        page = browser.new_page(viewport={"width": width, "height": 900})
        log = PageLog()

        def on_console(message: Any) -> None:
            if message.type == "error":
                where = message.location.get("url", "") if message.location else ""
                log.console_errors.append(f"{message.text} ({where})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: log.page_errors.append(str(exc)))
        page.goto(url)
        return page, log

    yield open_page
    for browser in browsers:
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
