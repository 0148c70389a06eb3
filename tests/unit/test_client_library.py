"""``ClarityMentorClient`` against a real uvicorn server on fake engines: a voice turn (fast and paced), the key
as the first message, refusals with their close codes, interrupt, the REST helpers, and the command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from backend.config import REPO_ROOT
from backend.test_client import ClarityMentorClient, ClientError, _base_urls
from tests.fakes import FakeLLM, FakeSTT, fake_engines, tone
from tests.live_server import serve_fakes

KEY = "client-key"
FAKE_REPLY = FakeLLM().reply
FAKE_TRANSCRIPT = FakeSTT().texts[0]
SPEECH = (tone(1.2) * 32767).astype(np.int16)


@pytest.fixture(scope="module", params=["keyed", "open"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """(base URL, API key or None): a server with a key and one without."""
    key = KEY if request.param == "keyed" else None
    settings = {"security": {"api_key": key, "requests_per_minute": 10_000}}
    with serve_fakes(tmp_path_factory.mktemp("client"), fake_engines(), **settings) as (url, _app):
        yield url, key


def test_urls_from_http_or_ws() -> None:
    assert _base_urls("http://h:1") == ("http://h:1", "ws://h:1/ws/voice")
    assert _base_urls("ws://h:1/ws/voice") == ("http://h:1", "ws://h:1/ws/voice")
    assert _base_urls("https://h/mentor/") == ("https://h/mentor", "wss://h/mentor/ws/voice")


async def test_voice_turn_fast_then_history_over_rest(server: tuple[str, str | None]) -> None:
    url, key = server
    async with ClarityMentorClient(url, api_key=key) as client:
        ready = await client.connect(sample_rate=16000, output_sample_rate=24000)
        assert ready["input_sample_rate"] == 16000 and ready["output_sample_rate"] == 24000
        await client.send_audio(SPEECH, realtime=False)
        await client.end_of_speech()
        turn = await client.receive_turn(timeout_s=15)
        assert turn.transcript == FAKE_TRANSCRIPT
        assert turn.response == FAKE_REPLY
        assert turn.emotion is not None and turn.emotion["primary_emotion"] == "fear"
        assert turn.outcome == "completed" and turn.sample_rate == 24000 and len(turn.audio) > 0
        assert not [e for e in turn.events if e.type == "error"]  # the auth message left no error behind
        session_id = client.session_id
        assert session_id == ready["session_id"]
        await client.disconnect()
        stored = await client.history(session_id)
        assert [(t["role"], t["content"]) for t in stored["turns"]] == [
            ("user", FAKE_TRANSCRIPT), ("assistant", FAKE_REPLY)]
        assert session_id in {s["session_id"] for s in await client.list_sessions()}


async def test_realtime_sending_is_paced(server: tuple[str, str | None]) -> None:
    url, key = server
    async with ClarityMentorClient(url, api_key=key) as client:
        await client.connect()
        started = time.monotonic()
        await client.send_audio(SPEECH[:8000])  # 0.5 s
        assert time.monotonic() - started == pytest.approx(0.5, abs=0.15)
        await client.send_silence(1.0, speed=4.0)  # VAD ends the turn on the silence (sent 4x faster)
        turn = await client.receive_turn(timeout_s=15)
        assert turn.outcome == "completed"


async def test_interrupt_cuts_the_reply(server: tuple[str, str | None]) -> None:
    url, key = server
    async with ClarityMentorClient(url, api_key=key) as client:
        await client.connect()
        await client.send_audio(SPEECH, realtime=False)
        await client.end_of_speech()

        async def first_audio() -> None:
            while (event := await client.next_event()) is not None and event.type not in ("audio", "turn_end"):
                pass
            assert event is not None and event.type == "audio", event

        await asyncio.wait_for(first_audio(), 15)
        await client.interrupt()
        turn = await client.receive_turn(timeout_s=15)
        assert turn.first("interrupted") is not None
        assert turn.outcome == "interrupted"


async def test_join_an_existing_session_and_unknown_one(server: tuple[str, str | None]) -> None:
    url, key = server
    async with ClarityMentorClient(url, api_key=key) as client:
        chat = await client.text_chat("I feel really stressed about my exam tomorrow.")
        assert chat["response"] == FAKE_REPLY
        ready = await client.connect(chat["session_id"])
        assert ready["session_id"] == chat["session_id"]
        await client.disconnect()
        with pytest.raises(ClientError) as info:
            await client.connect("no-such-session")
        assert (info.value.code, info.value.status) == ("session_not_found", 4404)
        with pytest.raises(ClientError) as rest:
            await client.history("no-such-session")
        assert (rest.value.code, rest.value.status) == ("session_not_found", 404)


async def test_wrong_key_is_refused(server: tuple[str, str | None]) -> None:
    url, key = server
    if key is None:
        pytest.skip("no key configured: every key is accepted")
    async with ClarityMentorClient(url, api_key="wrong") as client:
        with pytest.raises(ClientError) as info:
            await client.connect()
        assert (info.value.code, info.value.status) == ("unauthorized", 1008)
        with pytest.raises(ClientError) as rest:
            await client.list_sessions()
        assert (rest.value.code, rest.value.status) == ("unauthorized", 401)


def test_command_line_still_works(server: tuple[str, str | None], tmp_path: Path) -> None:
    url, key = server
    wav, out = tmp_path / "in.wav", tmp_path / "reply.wav"
    sf.write(wav, SPEECH, 16000)
    ws_url = url.replace("http://", "ws://") + "/ws/voice"
    args = [str(wav), "--url", ws_url, "--out", str(out), "--fast"] + (["--api-key", key] if key else [])
    done = subprocess.run(
        [sys.executable, "-m", "backend.test_client", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"type": "turn_end"' in done.stdout and "saved" in done.stdout
    assert sf.info(str(out)).duration > 0.5

