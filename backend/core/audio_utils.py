"""Audio conversion helpers: decode, resample, PCM16 <-> float32, WAV encode. All blocking; call off the loop."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from backend.core.audio_types import PCM16 as PCM16
from backend.core.audio_types import FloatAudio as FloatAudio
from backend.core.exceptions import AudioTooLong, EmptyAudio, UnsupportedAudio

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


def _too_long(max_seconds: float) -> AudioTooLong:
    return AudioTooLong(f"the recording is longer than {max_seconds:g} s; split it or trim it")


def decode_audio_file(
    data: bytes, target_rate: int = STT_RATE, *, max_seconds: float | None = None
) -> tuple[FloatAudio, float]:
    """Decode anything soundfile reads (WAV, FLAC, OGG, MP3...), or PyAV as a fallback; returns mono at target.

    Raises EmptyAudio for zero-length input or audio with no samples, UnsupportedAudio when it is not audio,
    AudioTooLong past ``max_seconds`` (checked from the header, or while decoding: a small compressed file
    cannot make the server decode hours of audio).
    """
    if not data:
        raise EmptyAudio("the uploaded file is empty")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            if max_seconds is not None and f.frames > max_seconds * f.samplerate:
                raise _too_long(max_seconds)
            audio, rate = _read_mono(f), f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError):
        audio, rate = _decode_with_av(data, max_seconds)
    audio = to_mono(np.asarray(audio, dtype=np.float32))
    if audio.size == 0:
        raise EmptyAudio("the audio file contains no samples")
    if not np.isfinite(audio).all():
        raise UnsupportedAudio("the audio holds non-finite samples (NaN or infinity)")
    duration = audio.size / float(rate)
    out = resample(audio, int(rate), target_rate)
    if out.size == 0:
        raise EmptyAudio("the recording is too short to hold any speech")
    return out, duration


def _read_mono(f: sf.SoundFile, block_frames: int = 1 << 16) -> FloatAudio:
    """Block by block, as mono: one read would allocate the frames x channels the header claims up front (a 2 KB
    FLAC can claim 300 s at 655 kHz on 8 channels: 6 GB), not what the file holds."""
    blocks: list[FloatAudio] = []
    while (block := f.read(block_frames, dtype="float32", always_2d=True)).shape[0]:
        with np.errstate(over="ignore", invalid="ignore"):  # huge float samples: rejected as non-finite below
            blocks.append(block.mean(axis=1, dtype=np.float32))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def _decode_with_av(data: bytes, max_seconds: float | None = None) -> tuple[FloatAudio, int]:
    import av  # deferred: only needed for compressed formats soundfile does not read

    limit = None if max_seconds is None else int(max_seconds * STT_RATE)
    chunks: list[FloatAudio] = []
    total = 0
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise UnsupportedAudio("the file has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=STT_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if limit is not None and total > limit:
                    raise _too_long(float(max_seconds or 0))
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except (UnsupportedAudio, AudioTooLong):
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
