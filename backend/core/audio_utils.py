"""Audio conversion helpers: decode, resample, PCM16 <-> float32, WAV encode. All blocking; call off the loop."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from backend.core.audio_types import PCM16 as PCM16
from backend.core.audio_types import FloatAudio as FloatAudio
from backend.core.exceptions import EmptyAudio, UnsupportedAudio

STT_RATE = 16_000
MIN_INPUT_RATE = 8_000
MAX_INPUT_RATE = 48_000


def pcm16_bytes_to_float(data: bytes) -> FloatAudio:
    if len(data) % 2:
        raise ValueError("PCM16 data must have an even number of bytes")
    return (np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0).astype(np.float32)


def float_to_pcm16(audio: FloatAudio) -> PCM16:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")


def resample(audio: FloatAudio, rate_in: int, rate_out: int) -> FloatAudio:
    if rate_in == rate_out or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    return np.asarray(soxr.resample(audio, rate_in, rate_out), dtype=np.float32)


def to_mono(audio: npt.NDArray[np.float32]) -> FloatAudio:
    return audio if audio.ndim == 1 else audio.mean(axis=1).astype(np.float32)


def decode_audio_file(data: bytes, target_rate: int = STT_RATE) -> tuple[FloatAudio, float]:
    """Decode anything soundfile reads (WAV, FLAC, OGG, MP3...), or PyAV as a fallback; returns mono at target.

    Raises EmptyAudio for zero-length input or audio with no samples, UnsupportedAudio when it is not audio.
    """
    if not data:
        raise EmptyAudio("the uploaded file is empty")
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        audio, rate = _decode_with_av(data)
    audio = to_mono(np.asarray(audio, dtype=np.float32))
    if audio.size == 0:
        raise EmptyAudio("the audio file contains no samples")
    duration = audio.size / float(rate)
    return resample(audio, int(rate), target_rate), duration


def _decode_with_av(data: bytes) -> tuple[FloatAudio, int]:
    import av  # deferred: only needed for compressed formats soundfile does not read

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise UnsupportedAudio("the file has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=STT_RATE)
            chunks = [
                out.to_ndarray().reshape(-1) for frame in container.decode(stream) for out in resampler.resample(frame)
            ]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except UnsupportedAudio:
        raise
    except Exception as exc:
        raise UnsupportedAudio(f"could not decode the file as audio ({type(exc).__name__})") from exc
    if not chunks:
        raise EmptyAudio("the audio file contains no samples")
    return np.concatenate(chunks).astype(np.float32), STT_RATE


def encode_wav(pcm: PCM16, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def frames(pcm: PCM16, rate: int, frame_ms: int) -> list[bytes]:
    """Split PCM16 into frames of at most frame_ms, as little-endian bytes."""
    step = max(1, rate * frame_ms // 1000)
    raw = pcm.astype("<i2", copy=False)
    return [raw[i : i + step].tobytes() for i in range(0, raw.size, step)]


def espeak(text: str, *, voice: str = "en-gb-x-rp", speed: int = 150, ssml: bool = False) -> tuple[PCM16, int]:
    """Speak ``text`` with the espeak-ng command (test prompts, benchmarks, the CLI client): mono PCM16, rate."""
    import shutil
    import subprocess

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng; `make run` does it)")
    cmd = [exe, *(["-m"] if ssml else []), "-v", voice, "-s", str(speed), "--stdout", text]
    wav = subprocess.run(cmd, capture_output=True, check=True).stdout  # noqa: S603 - fixed argv, no shell
    audio, rate = sf.read(io.BytesIO(wav), dtype="int16")
    return np.asarray(audio, dtype=np.int16), int(rate)
