"""Compressed audio out (mp3, opus, aac, flac) with PyAV, which faster-whisper already brings in with its own
FFmpeg build (libmp3lame, libopus and the native aac and flac encoders in the wheels we pin). Blocking: call off
the loop."""

from __future__ import annotations

import functools
import io

from backend.core.audio_types import PCM16

# response format -> (container, encoder) as FFmpeg names them. opus is Ogg Opus, aac is ADTS (as OpenAI sends).
FORMATS: dict[str, tuple[str, str]] = {
    "mp3": ("mp3", "libmp3lame"),
    "opus": ("ogg", "libopus"),
    "aac": ("adts", "aac"),
    "flac": ("flac", "flac"),
}
MEDIA_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


@functools.cache
def can_encode(fmt: str) -> bool:
    """Whether this machine's PyAV has the encoder for ``fmt`` (checked once per format)."""
    if fmt not in FORMATS:
        return False
    try:
        import av

        av.codec.Codec(FORMATS[fmt][1], "w")
    except Exception:  # no PyAV, or an FFmpeg build without that encoder
        return False
    return True


def encode_compressed(pcm: PCM16, rate: int, fmt: str) -> bytes:
    """Mono PCM16 at ``rate`` as a complete ``fmt`` file (one of :data:`FORMATS`)."""
    import av

    container, codec = FORMATS[fmt]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if pcm.size:
            frame = av.AudioFrame.from_ndarray(pcm.astype("<i2").reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
