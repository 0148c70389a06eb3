"""The web client at ``/`` in headless Chromium, on the real models, with espeak-ng speaking into the fake mic."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from backend.config import Settings
from backend.main import create_app
from tests.browser.conftest import PageLog, make_wav, start_server
from tests.conftest import make_settings
from tests.fakes import fake_engines

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PROMPT = "I feel really stressed about my exam tomorrow."
MORE = (
    "And there is something else. I have not slept well all week, and I keep worrying that I will forget "
    "everything I studied for it."
)
CRISIS = "Sometimes I feel like I don't want to live anymore."
TURN_TIMEOUT_MS = 90_000
OpenClient = Callable[..., tuple[Any, PageLog]]


def first_turn_done(page: Any) -> dict[str, Any]:
    page.wait_for_function(
        "() => { const t = __clarity.turns[0]; return t && t.transcript && t.emotion && t.final && t.metrics }",
        timeout=TURN_TIMEOUT_MS,
    )
    turn: dict[str, Any] = page.evaluate("__clarity.turns[0]")
    return turn


def start(page: Any, *, wait_running: bool = True) -> None:
    button = page.get_by_role("button", name=re.compile("Start"))
    button.focus()
    page.keyboard.press("Enter")  # keyboard operable
    if wait_running:
        page.get_by_role("button", name=re.compile("Stop")).wait_for()


def test_hands_free_turn_shows_transcript_emotion_reply_and_plays_audio(
    live_server: str, open_client: OpenClient, wav_dir: Path, artifacts: Path
) -> None:
    # Long trailing silence: Chromium loops the file, and the test is over before the sentence comes again.
    wav = make_wav(wav_dir / "prompt.wav", [0.5, PROMPT, 25.0])
    page, log = open_client(live_server, wav)
    start(page)
    turn = first_turn_done(page)

    transcript = turn["transcript"].lower()
    assert "exam" in transcript or "stressed" in transcript, transcript
    card = page.locator(".turn").first
    assert re.search("exam|stressed", card.locator(".transcript").inner_text(), re.IGNORECASE)
    emotion = turn["emotion"]
    assert card.locator(".emo").inner_text() == f"{emotion['primary_emotion']} {round(emotion['confidence'] * 100)}%"
    assert "words:" in card.locator(".emotion-line").inner_text()
    assert card.locator(".reply").inner_text().strip() == turn["reply"].strip() != ""
    assert "voice to voice" in card.locator(".metrics").inner_text()
    assert turn["metrics"]["voice_to_voice_ms"] > 0
    # Playback really ran: buffers were scheduled and some finished playing in the AudioContext.
    page.wait_for_function("() => __clarity.framesPlayed > 0", timeout=30_000)
    assert turn["audioStarted"] and turn["framesScheduled"] > 0
    assert page.locator("#chart svg circle").count() == 1
    assert page.get_by_role("status").inner_text()

    page.screenshot(path=str(artifacts / "hands_free_desktop.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 812})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "horizontal scrolling at 375 px"
    assert page.get_by_role("button", name=re.compile("Stop")).is_visible()
    page.screenshot(path=str(artifacts / "hands_free_375px.png"), full_page=True)

    page.get_by_role("button", name=re.compile("Stop")).click()
    page.get_by_role("button", name=re.compile("Start")).wait_for()
    states = page.evaluate("__clarity.states")
    for earlier, later in [("connecting", "listening"), ("listening", "thinking"), ("thinking", "speaking")]:
        assert states.index(earlier) < states.index(later), states
    assert states[-1] == "idle"
    assert page.evaluate("__clarity.errors") == []
    assert log.problems() == []


def test_barge_in_stops_playback_when_the_user_talks_over_the_reply(
    live_server: str, open_client: OpenClient, wav_dir: Path, artifacts: Path
) -> None:
    # The user pauses long enough to end the turn, then goes on talking while the mentor answers. The pause is
    # longer than a reply takes to start on a loaded 2-core machine (voice to voice 1.5-4.5 s seen here) and
    # shorter than a reply lasts; Chromium loops the file, so a cycle that misses the reply gets another go.
    wav = make_wav(wav_dir / "barge_in.wav", [0.3, PROMPT, 5.0, MORE, 4.0])
    page, log = open_client(live_server, wav)
    start(page)
    heard = "t => t.interrupted && t.playedMsAtInterrupt > 0"
    page.wait_for_function(f"() => __clarity.turns.some({heard})", timeout=TURN_TIMEOUT_MS)
    cut = page.evaluate(f"__clarity.turns.find({heard})")
    turn_id = cut["turn_id"]
    assert cut["turn_id"] in page.evaluate("__clarity.interrupted") and cut["transcript"]
    assert cut["framesScheduled"] > 0 and cut["playingAfterStop"] is False
    page.wait_for_timeout(1500)  # anything of that turn still arriving would be counted now
    after = page.evaluate(f"__clarity.turns.find(t => t.turn_id === {turn_id!r})")
    assert after["framesAfterInterrupt"] == 0
    assert after["framesScheduled"] == cut["framesAtInterrupt"]
    assert page.evaluate("__clarity.framesAfterInterrupt") == 0  # nor for any other interrupted turn
    card = page.locator(f'.turn[data-turn-id="{turn_id}"]')
    assert "interrupted" in (card.get_attribute("class") or "")
    assert card.locator(".turn-state").inner_text().startswith("Interrupted")
    page.screenshot(path=str(artifacts / "barge_in.png"), full_page=True)
    assert page.evaluate("__clarity.errors") == []
    assert log.problems() == []


def test_crisis_turn_is_shown_in_a_calm_safety_box(
    live_server: str, open_client: OpenClient, wav_dir: Path, artifacts: Path
) -> None:
    wav = make_wav(wav_dir / "crisis.wav", [0.5, CRISIS, 25.0])
    page, log = open_client(live_server, wav)
    start(page)
    page.wait_for_function("() => { const t = __clarity.turns[0]; return t && t.safety && t.final }", timeout=60_000)
    turn = page.evaluate("__clarity.turns[0]")
    card = page.locator(".turn").first
    assert "safety" in (card.get_attribute("class") or "")
    box = card.get_by_role("note")
    assert "not alone" in box.locator(".safety-note").inner_text()
    reply = box.locator(".reply").inner_text()
    assert reply == turn["reply"] and "988" in reply  # the crisis line is in the reply
    page.screenshot(path=str(artifacts / "safety.png"), full_page=True)
    page.get_by_role("button", name=re.compile("Stop")).click()
    assert page.evaluate("__clarity.errors") == []
    assert log.problems() == []


def test_past_sessions_list_open_and_delete(
    live_server: str, open_client: OpenClient, wav_dir: Path, artifacts: Path
) -> None:
    wav = make_wav(wav_dir / "session.wav", [0.5, PROMPT, 25.0])
    page, log = open_client(live_server, wav)
    start(page)
    turn = first_turn_done(page)
    session_id = page.evaluate("__clarity.sessionId")
    page.get_by_role("button", name=re.compile("Stop")).click()

    item = page.locator(f'#session-list li[data-session-id="{session_id}"]')
    item.wait_for(timeout=15_000)
    page.get_by_role("button", name="New session").click()
    page.wait_for_function(f"() => __clarity.sessionId && __clarity.sessionId !== {session_id!r}")
    assert page.locator(".turn").count() == 0

    item.locator("button.open").click()
    page.wait_for_function(f"() => __clarity.sessionId === {session_id!r} && __clarity.turns.length > 0")
    card = page.locator(".turn").first
    assert card.locator(".transcript").inner_text() == turn["transcript"]
    assert card.locator(".reply").inner_text().strip()
    assert page.locator("#chart svg circle").count() >= 1
    page.screenshot(path=str(artifacts / "session_opened.png"), full_page=True)

    delete = item.locator("button.delete")
    delete.click()
    assert delete.inner_text() == "Confirm delete"
    delete.click()
    item.wait_for(state="detached", timeout=10_000)
    assert httpx.get(f"{live_server}/api/sessions/{session_id}/history").status_code == 404
    assert page.evaluate("__clarity.sessionId") is None
    assert page.evaluate("__clarity.errors") == []
    assert log.problems() == []


def test_denied_microphone_is_explained(live_server: str, open_client: OpenClient, wav_dir: Path) -> None:
    page, log = open_client(live_server, make_wav(wav_dir / "unused.wav", [0.5]), allow_mic=False)
    start(page, wait_running=False)
    page.wait_for_function("() => __clarity.state === 'error'", timeout=15_000)
    assert "Microphone access was denied" in page.get_by_role("status").inner_text()
    page.get_by_role("button", name=re.compile("Start")).wait_for()
    assert log.problems() == []


def test_api_key_prompt_and_websocket_auth_message(open_client: OpenClient, wav_dir: Path, tmp_path: Path) -> None:
    """Fake engines (no models needed): a 401 shows the key field; the socket authenticates with a first message."""
    settings = make_settings(tmp_path, security={"api_key": "browser-test-key"})
    running = start_server(create_app_with_fakes(settings))
    try:
        wav = make_wav(wav_dir / "quiet.wav", [1.0])
        page, log = open_client(running.url, wav)
        key_field = page.get_by_label("API key")
        key_field.wait_for()  # GET /api/sessions answered 401
        key_field.fill("not-the-key")
        page.get_by_role("button", name="Save key").click()
        start(page, wait_running=False)
        page.wait_for_function("() => __clarity.state === 'error'", timeout=15_000)
        assert "API key" in page.get_by_role("status").inner_text()
        assert key_field.is_visible()

        key_field.fill("browser-test-key")
        page.get_by_role("button", name="Save key").click()
        assert page.evaluate("localStorage.getItem('claritymentor.apiKey')") == "browser-test-key"
        start(page)
        page.wait_for_function("() => __clarity.state === 'listening' && __clarity.sessionId", timeout=15_000)
        page.wait_for_function("() => !document.querySelector('#sessions-note:not([hidden])')", timeout=10_000)
        page.get_by_role("button", name=re.compile("Stop")).click()
        # The page asked without a key once (401 for the session list): that, and only that, is expected.
        assert log.problems(lambda m: "status of 401" in m) == []
    finally:
        running.stop()


def create_app_with_fakes(settings: Settings) -> FastAPI:
    engines = fake_engines()
    return create_app(settings, engine_loader=lambda _s: engines)
