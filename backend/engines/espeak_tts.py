"""espeak-ng text-to-speech through its command line: ``--stdout`` WAV, no temp files, no shared state, so calls
are thread-safe and a ~10 ms sentence never holds a lock. The delivery follows the user's emotion a little
(see :data:`STYLES`)."""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from backend.config import TTSSettings
from backend.core.audio_utils import PCM16


@dataclass(frozen=True, slots=True)
class VoiceStyle:
    """Relative delivery: speed as a factor of ``tts.rate_wpm``, pitch offset (espeak's 0-99 scale, 50 = normal),
    amplitude (espeak's 0-200 scale, 100 = normal)."""

    speed: float = 1.0
    pitch: int = 50
    amplitude: int = 100


# Within taste: slower, lower and softer for sadness and fear; a touch calmer for anger (never mirrored back);
# a little brighter for joy. Everything else speaks normally.
STYLES: dict[str, VoiceStyle] = {
    "sadness": VoiceStyle(speed=0.88, pitch=42, amplitude=85),
    "fear": VoiceStyle(speed=0.9, pitch=45, amplitude=88),
    "anger": VoiceStyle(speed=0.94, pitch=47, amplitude=95),
    "joy": VoiceStyle(speed=1.04, pitch=56, amplitude=100),
}


# espeak-ng speaks no slower than 80 words per minute; faster it goes well past 4x our default 165.
MIN_WPM, MAX_WPM = 80, 900


def style_for(emotion: str | None) -> VoiceStyle:
    return STYLES.get(emotion or "neutral", VoiceStyle())


def installed_voices(exe: str) -> set[str]:
    """Every name espeak-ng accepts for ``-v`` (language code, voice name, file id), lower-cased."""
    listing = subprocess.run([exe, "--voices"], capture_output=True, text=True, timeout=10, check=True).stdout  # noqa: S603
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            names.update(p.lower() for p in (parts[1], parts[3], parts[4], parts[4].rpartition("/")[2]))
    return names


class EspeakTTS:
    sample_rate = 22050

    def __init__(self, settings: TTSSettings) -> None:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng; `make run` does it)")
        self._exe = exe
        self._voices = installed_voices(exe)
        if not self.has_voice(settings.voice):  # espeak would fall back silently
            raise ValueError(
                f"espeak-ng has no voice {settings.voice!r} (config key tts.voice; see espeak-ng --voices)"
            )
        self._settings = settings
        self.name = f"espeak-ng ({settings.voice})"
        probe = self._run("ready", VoiceStyle())
        if probe.size == 0:
            raise ValueError(f"espeak-ng voice {settings.voice!r} produced no audio (config key tts.voice)")

    def has_voice(self, voice: str) -> bool:
        """Whether espeak-ng has ``voice`` (a variant after ``+``, e.g. ``en-us+f3``, is not checked)."""
        return voice.partition("+")[0].lower() in self._voices

    def _run(self, text: str, style: VoiceStyle, voice: str | None = None, speed: float = 1.0) -> PCM16:
        wpm = min(MAX_WPM, max(MIN_WPM, round(self._settings.rate_wpm * style.speed * speed)))
        cmd = [self._exe, "-v", voice or self._settings.voice, "-s", str(wpm), "-p", str(style.pitch)]
        cmd += ["-a", str(style.amplitude), "--stdout", "--stdin"]
        done = subprocess.run(cmd, input=text.encode(), capture_output=True, timeout=30, check=False)  # noqa: S603
        if done.returncode != 0 or not done.stdout:
            raise RuntimeError(f"espeak-ng failed ({done.returncode}): {done.stderr.decode(errors='replace')[:200]}")
        audio, rate = sf.read(io.BytesIO(done.stdout), dtype="int16", always_2d=False)
        if int(rate) != self.sample_rate:
            raise RuntimeError(f"espeak-ng wrote {rate} Hz, expected {self.sample_rate}")
        return np.asarray(audio if audio.ndim == 1 else audio[:, 0], dtype=np.int16)

    def synthesize(
        self, text: str, emotion: str | None = None, *, voice: str | None = None, speed: float = 1.0
    ) -> PCM16:
        """``voice``: another installed voice for this call (see :meth:`has_voice`); ``speed``: a factor on the
        rate, within espeak's 80-900 words per minute."""
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        return self._run(text, style_for(emotion), voice, speed)
