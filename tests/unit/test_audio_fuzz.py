"""Property tests for audio decoding: arbitrary bytes, real WAV/FLAC/OGG/MP3 files truncated and corrupted, and
headers that declare absurd rates, channel counts and lengths. ``decode_audio_file`` either returns float32 mono
audio at 16 kHz or raises a ClarityError with a 4xx status: never another exception, never a hang, never a huge
allocation because a header said so. The same inputs through POST /api/transcribe: 200 or a 4xx in the one error
shape."""

from __future__ import annotations

import io
import struct
import sys
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av  # noqa: F401 - imported here so the first example does not pay for it inside its deadline
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context, event

from backend.core.audio_utils import STT_RATE, decode_audio_file
from backend.core.exceptions import ClarityError
from tests.conftest import make_settings

MAX_SECONDS = 30.0
# Fixed examples (derandomize): CI sees the same cases every run. The deadline catches a hang, not slowness
# (a loaded CI box once took 2.5 s on one WAV header).
FUZZ = settings(deadline=10_000, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.timeout(180)  # a hang fails the test instead of stalling the run


def _encode(audio: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _voice(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


SAMPLES: dict[str, bytes] = {
    "wav-pcm16-16k": _encode(_voice(0.3, 16000), 16000, "WAV", "PCM_16"),
    "wav-float-stereo-44k": _encode(_voice(0.3, 44100, 2), 44100, "WAV", "FLOAT"),
    "wav-pcm24-8k": _encode(_voice(0.3, 8000), 8000, "WAV", "PCM_24"),
    "flac-22k": _encode(_voice(0.3, 22050), 22050, "FLAC"),
    "flac-6ch-48k": _encode(_voice(0.2, 48000, 6), 48000, "FLAC"),
    "ogg-vorbis-48k": _encode(_voice(0.3, 48000), 48000, "OGG", "VORBIS"),
    "ogg-opus-48k": _encode(_voice(0.3, 48000), 48000, "OGG", "OPUS"),
    "mp3-16k": _encode(_voice(0.5, 16000), 16000, "MP3"),
    "aiff-16k": _encode(_voice(0.3, 16000), 16000, "AIFF"),
    "au-16k": _encode(_voice(0.3, 16000), 16000, "AU"),
}
MAGIC = [b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3\x04\x00", b"\xff\xfb", b"FORM", b".snd", b"caff",
         b"\x1aE\xdf\xa3", b"ftypM4A ", b"NIST_1A\n", b"Creative Voice File\x1a"]  # fmt: skip


NUMPY_ON_GARBAGE = ("overflow encountered", "invalid value encountered")


@contextmanager
def only_known_library_noise() -> Iterator[None]:
    """Production runs with warnings as warnings, so the decoder is tested that way too, but nothing may pass
    unnoticed except two known kinds of noise:

    - numpy's RuntimeWarning "overflow/invalid value encountered" while mixing channels of a float file whose
      samples are garbage (1e38, NaN);
    - soundfile's cffi seek callback: libsndfile can seek before the start of a truncated file (AIFF cut at 28
      bytes), ``BytesIO.seek`` raises ValueError there, and cffi can only print it ("Exception ignored from cffi
      callback"); decoding still ends in a clean 415.
    """
    unraisable: list[BaseException | None] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda hook_args: unraisable.append(hook_args.exc_value)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        sys.unraisablehook = previous
    for exc in unraisable:
        assert isinstance(exc, ValueError) and "negative seek value" in str(exc), repr(exc)
    for warning in caught:
        assert warning.category is RuntimeWarning, warning
        assert str(warning.message).startswith(NUMPY_ON_GARBAGE), warning


def note_outcome(outcome: str) -> None:
    """``--hypothesis-show-statistics`` shows the mix of outcomes, so a run that only ever refuses is noticed."""
    if currently_in_test_context():
        event(outcome)


def check_decode(data: bytes, max_seconds: float | None = MAX_SECONDS) -> np.ndarray | None:
    """The property: decoded float32 mono at 16 kHz within the limit, or a 4xx ClarityError."""
    try:
        with only_known_library_noise():
            audio, duration = decode_audio_file(data, max_seconds=max_seconds)
    except ClarityError as exc:
        assert 400 <= exc.status_code < 500, (exc.status_code, exc.code, exc.detail)
        assert exc.code in {"empty_audio", "unsupported_audio", "audio_too_long"}, exc.code
        note_outcome(f"refused: {exc.code}")
        return None
    assert isinstance(audio, np.ndarray)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert duration >= 0
    if max_seconds is not None:
        assert duration <= max_seconds + 0.5  # the compressed path may finish its last frame
    assert abs(audio.size - duration * STT_RATE) <= 2 + 0.001 * audio.size, (audio.size, duration)
    note_outcome("decoded")
    return audio


# --- headers built by hand -----------------------------------------------------------------------------------


def wav(fmt: int, channels: int, rate: int, bits: int, payload: bytes, data_size: int | None = None,
        fmt_size: int = 16, riff_size: int | None = None) -> bytes:  # fmt: skip
    block = (channels * bits // 8) & 0xFFFF
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    fmt_chunk = fmt_chunk[:fmt_size].ljust(fmt_size, b"\0")
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt_chunk + b"data" + struct.pack("<I", size) + payload
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def flac_with_streaminfo(rate: int, channels: int, total_samples: int) -> bytes:
    """A real FLAC file whose STREAMINFO is rewritten: rate (20 bits), channels (3), total samples (36)."""
    data = bytearray(SAMPLES["flac-22k"])
    assert data[:4] == b"fLaC"
    offset = 8 + 10  # "fLaC", the block header, min/max block and frame sizes
    packed = int.from_bytes(data[offset : offset + 8], "big")
    bits = (packed >> 36) & 0x1F
    packed = (rate << 44) | ((channels - 1) << 41) | (bits << 36) | total_samples
    data[offset : offset + 8] = packed.to_bytes(8, "big")
    data[offset + 8 : offset + 24] = bytes(16)  # MD5 unknown
    return bytes(data)


ABSURD_RATES = [0, 1, 7, 100, 7999, 8000, 44100, 48000, 48001, 192000, 10**6, 2**31 - 1, 2**31, 2**32 - 1]
ABSURD_WAV_FIELDS = {
    "fmt": st.sampled_from([0, 2, 3, 6, 7, 0x55, 0xFFFE, 0xFFFF]),
    "channels": st.one_of(st.sampled_from([0, 2, 8, 255, 1024, 65535]), st.integers(0, 65535)),
    "rate": st.one_of(st.sampled_from(ABSURD_RATES), st.integers(0, 2**32 - 1)),
    "bits": st.sampled_from([0, 1, 7, 8, 12, 24, 32, 48, 64, 255]),
    "data_size": st.one_of(st.sampled_from([0, 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1)),
    "fmt_size": st.sampled_from([0, 14, 18, 40]),
    "riff_size": st.sampled_from([0, 4, 2**32 - 1]),
}
TONE_PCM16 = (_voice(0.05, 16000) * 32767).astype("<i2").tobytes()


@st.composite
def wav_headers(draw: st.DrawFn) -> bytes:
    """A plausible 16 kHz PCM16 WAV with one to four header fields replaced by absurd values."""
    fields: dict[str, Any] = {"fmt": 1, "channels": 1, "rate": 16000, "bits": 16, "data_size": None,
                                     "fmt_size": 16, "riff_size": None}  # fmt: skip
    for key in draw(st.permutations(sorted(ABSURD_WAV_FIELDS)))[: draw(st.integers(1, 4))]:
        fields[key] = draw(ABSURD_WAV_FIELDS[key])
    payload = draw(st.one_of(st.just(TONE_PCM16), st.binary(max_size=2048)))
    return wav(payload=payload, **fields)


@dataclass(frozen=True)
class Body:
    """An upload and how it was made: failing examples print the recipe, not kilobytes of bytes."""

    how: str
    data: bytes = field(repr=False)


ACTIONS = ("set", "flip", "max", "delete", "insert")
Mutation = tuple[str, bool, float, int]  # action, in the header (first 96 bytes), where (0..1), a byte value


def mutate(name: str, mutations: list[Mutation]) -> Body:
    data = bytearray(SAMPLES[name])
    for action, in_header, where, value in mutations:
        if not data:
            break
        position = int(where * (min(len(data), 96) if in_header else len(data)))
        if action == "set":
            data[position] = value
        elif action == "flip":
            data[position] ^= 1 << (value % 8)
        elif action == "max":
            data[position : position + 4] = b"\xff\xff\xff\x7f"
        elif action == "delete":
            del data[position : position + 1 + value % 16]
        else:
            data[position:position] = bytes([value]) * (1 + value % 16)
    return Body(f"mutate({name!r}, {mutations!r})", bytes(data))


def truncate(name: str, cut: float) -> Body:
    return Body(f"truncate({name!r}, {cut!r})", SAMPLES[name][: int(len(SAMPLES[name]) * cut)])


def raw(data: bytes) -> Body:
    return Body(repr(data), data)


names = st.sampled_from(sorted(SAMPLES))
mutations = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.booleans(), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    min_size=1,
    max_size=8,
)
arbitrary = st.builds(
    raw, st.one_of(st.binary(max_size=4096), st.builds(bytes.__add__, st.sampled_from(MAGIC), st.binary(max_size=2048)))
)
truncated = st.builds(truncate, names, st.floats(0, 1))
corrupted = st.builds(mutate, names, mutations)


@settings(FUZZ, max_examples=300)
@given(body=arbitrary)
def test_arbitrary_bytes_decode_or_give_a_4xx(body: Body) -> None:
    check_decode(body.data)


@settings(FUZZ, max_examples=200)
@given(body=truncated)
def test_truncated_files_decode_or_give_a_4xx(body: Body) -> None:
    check_decode(body.data)


@settings(FUZZ, max_examples=500)
@given(body=corrupted)
def test_corrupted_files_decode_or_give_a_4xx(body: Body) -> None:
    check_decode(body.data)


@settings(FUZZ, max_examples=400)
@given(data=wav_headers())
def test_wav_headers_with_absurd_rates_channels_and_lengths(data: bytes) -> None:
    check_decode(data)


@settings(FUZZ, max_examples=150)
@given(
    rate=st.one_of(st.sampled_from([1, 8000, 48000, 655350, 2**20 - 1]), st.integers(1, 2**20 - 1)),
    channels=st.integers(1, 8),
    total=st.one_of(st.sampled_from([0, 1, 2**32, 2**36 - 1]), st.integers(0, 2**36 - 1)),
)
def test_flac_headers_that_lie_about_their_length(rate: int, channels: int, total: int) -> None:
    check_decode(flac_with_streaminfo(rate, channels, total))


def test_the_untouched_samples_decode_to_their_length() -> None:
    for name, data in SAMPLES.items():
        audio = check_decode(data)
        assert audio is not None, name
        expected = 0.5 if name.startswith("mp3") else 0.2 if "6ch" in name else 0.3
        assert audio.size / STT_RATE == pytest.approx(expected, abs=0.08), name
        assert float(np.abs(audio).max()) > 0.1, name
    exact = check_decode(SAMPLES["wav-pcm16-16k"])  # 16 kHz mono in: the samples themselves out
    assert exact is not None
    np.testing.assert_allclose(exact, _voice(0.3, 16000), atol=1 / 32768)
    mixed = check_decode(SAMPLES["flac-6ch-48k"])  # six identical channels mix down to the same wave, not 6x
    assert mixed is not None and float(np.abs(mixed).max()) == pytest.approx(0.4, abs=0.02)


@pytest.mark.parametrize(("rate", "channels"), [(655350, 8), (2**20 - 1, 8), (48000, 8)])
def test_a_header_claiming_hours_does_not_allocate_them(rate: int, channels: int) -> None:
    """A 2 KB FLAC whose STREAMINFO claims just under the limit (at 655 kHz and 8 channels: 6 GB of float32) must
    not make the decoder allocate what the header claims (a MemoryError, a 500, on a small host)."""
    total = int(300 * rate) - 1
    data = flac_with_streaminfo(rate, channels, total)
    tracemalloc.start()
    try:
        check_decode(data, max_seconds=300)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"decoding a {len(data)}-byte file allocated {peak / 2**20:.0f} MiB"


def test_the_limit_is_honoured_and_optional() -> None:
    for name, data in SAMPLES.items():
        assert check_decode(data, max_seconds=None) is not None, name
        with pytest.raises(ClarityError) as refused:
            decode_audio_file(data, max_seconds=0.1)
        assert (refused.value.status_code, refused.value.code) == (413, "audio_too_long"), name


# --- through the HTTP route -----------------------------------------------------------------------------------

route_bodies = st.one_of(arbitrary, truncated, corrupted, st.builds(raw, wav_headers()))


@pytest.fixture
def transcribe_client(client_factory: Callable[..., TestClient], tmp_path: Path) -> TestClient:
    return client_factory(settings=make_settings(tmp_path, server={"max_audio_seconds": MAX_SECONDS}))


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=route_bodies,
    filename=st.sampled_from(["a.wav", "a.flac", "a.ogg", "a.mp3", "", "x"]),
    content_type=st.sampled_from(["audio/wav", "audio/flac", "application/octet-stream", "text/plain"]),
)
def test_transcribe_answers_200_or_a_4xx_in_the_error_shape(
    transcribe_client: TestClient, body: Body, filename: str, content_type: str
) -> None:
    with only_known_library_noise():
        response = transcribe_client.post("/api/transcribe", files={"file": (filename, body.data, content_type)})
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    payload = response.json()
    if response.status_code == 200:
        assert set(payload) >= {"text", "language", "duration_s"}
        assert 0 <= payload["duration_s"] <= MAX_SECONDS + 0.5
    else:
        assert set(payload) == {"detail", "code", "error_id"}, payload
        assert payload["code"] in {"empty_audio", "unsupported_audio", "audio_too_long", "validation_error"}


def test_transcribe_without_a_multipart_body_is_a_4xx(transcribe_client: TestClient) -> None:
    for body, content_type in [(SAMPLES["wav-pcm16-16k"], "audio/wav"), (b"", "multipart/form-data; boundary=x"),
                               (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x")]:  # fmt: skip
        response = transcribe_client.post("/api/transcribe", content=body, headers={"Content-Type": content_type})
        assert 400 <= response.status_code < 500, response.text
        assert set(response.json()) == {"detail", "code", "error_id"}
