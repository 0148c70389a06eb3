"""``stt.engine: openai`` and ``tts.engine: openai`` with another instance of this server as the far end: the
front server's voice turn is transcribed and spoken by the back server's ``/v1/audio`` routes."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from backend.config import STTSettings, TTSSettings
from backend.core.audio_utils import encode_wav, float_to_pcm16
from backend.engines.openai_audio import OpenAISTT, OpenAITTS
from tests.fakes import FakeSTT, fake_engines, tone
from tests.live_server import serve_fakes
from tests.ws_helpers import one_turn


def test_one_server_uses_another_for_speech_to_text_and_speech(tmp_path: Path) -> None:
    back_engines = fake_engines()
    with serve_fakes(tmp_path / "back", back_engines) as (back, _app):
        stt = OpenAISTT(STTSettings(engine="openai", base_url=f"{back}/v1", api_model="whisper-1"))
        tts = OpenAITTS(TTSSettings(engine="openai", base_url=f"{back}/v1", api_model="tts-1", voice="alloy"))
        front_engines = fake_engines(stt=stt, tts=tts)
        from fastapi.testclient import TestClient

        from backend.main import create_app
        from tests.conftest import make_settings

        (tmp_path / "front").mkdir()
        app = create_app(make_settings(tmp_path / "front"), engine_loader=lambda _s: front_engines)
        with TestClient(app) as front:
            with front.websocket_connect("/ws/voice") as ws:
                ready = ws.receive_json()
                got = one_turn(ws)
            wav = encode_wav(float_to_pcm16(tone(1.0)), 16000)
            transcribed = front.post("/api/transcribe", files={"file": ("a.wav", wav, "audio/wav")})
        back_health = httpx.get(f"{back}/api/health").json()
    assert ready["output_sample_rate"] == 24000  # the far end's PCM rate
    assert got.one("transcript")["text"] == FakeSTT().texts[0]  # words from the back server's STT
    audio = np.frombuffer(b"".join(got.audio), dtype="<i2")
    assert audio.size > 24000 * 0.5 and np.abs(audio).max() > 1000  # real speech audio from the back server's TTS
    assert any("That sounds really stressful" in s for s in back_engines.tts.spoken)  # type: ignore[attr-defined]
    assert transcribed.status_code == 200 and transcribed.json()["text"] == FakeSTT().texts[0]
    assert back_health["status"] == "healthy"
