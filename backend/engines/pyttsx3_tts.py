"""pyttsx3 + espeak-ng text-to-speech. pyttsx3 is not thread-safe: every call runs on one dedicated thread."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from backend.config import TTSSettings
from backend.core.audio_utils import PCM16


class Pyttsx3TTS:
    def __init__(self, settings: TTSSettings) -> None:
        self._settings = settings
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts-pyttsx3")
        self._tmpdir = tempfile.TemporaryDirectory(prefix="claritymentor-tts-")
        self._engine: Any = None
        self._last_rate = 22050
        self.sample_rate: int = self._worker.submit(self._init_engine).result()
        self.name = f"pyttsx3 + espeak-ng ({settings.voice})"

    def _init_engine(self) -> int:
        import pyttsx3
        import pyttsx3.drivers.espeak as espeak_driver

        # The espeak driver prints "Audio saved to ..." on every file; silence it without touching sys.stdout.
        espeak_driver.print = lambda *args, **kwargs: None
        engine = pyttsx3.init("espeak")
        wanted = self._settings.voice.lower()
        voices = engine.getProperty("voices")
        match = next((v for v in voices if v.id.lower() in (wanted, f"gmw/{wanted}")), None)
        if match is None:
            match = next((v for v in voices if wanted in v.id.lower() or wanted in v.name.lower()), None)
        if match is None:
            raise ValueError(f"espeak voice {self._settings.voice!r} not found (config key tts.voice)")
        engine.setProperty("voice", match.id)
        engine.setProperty("rate", self._settings.rate_wpm)
        self._engine = engine
        self._synth("ready")  # warm-up; also learns the rate espeak writes at
        return self._last_rate

    def _synth(self, text: str) -> PCM16:
        path = Path(self._tmpdir.name) / "out.wav"
        path.unlink(missing_ok=True)
        self._engine.save_to_file(text, str(path))
        self._engine.runAndWait()
        if not path.exists():
            return np.zeros(0, dtype=np.int16)
        audio, rate = sf.read(str(path), dtype="int16", always_2d=False)
        self._last_rate = int(rate)
        return np.asarray(audio if audio.ndim == 1 else audio[:, 0], dtype=np.int16)

    def synthesize(self, text: str) -> PCM16:
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        return self._worker.submit(self._synth, text).result()

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        self._tmpdir.cleanup()
