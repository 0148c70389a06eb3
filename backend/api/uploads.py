"""An uploaded recording, read within the upload limit and decoded off the event loop within the length cap
(shared by /api/transcribe and /v1/audio/transcriptions)."""

from __future__ import annotations

from functools import partial

from fastapi import UploadFile

from backend.core.audio_utils import FloatAudio, decode_audio_file
from backend.core.exceptions import PayloadTooLarge
from backend.services.container import Services


async def decode_upload(services: Services, file: UploadFile) -> tuple[FloatAudio, float]:
    """16 kHz mono audio and its duration in seconds."""
    server = services.settings.server
    limit = int(server.max_upload_mb * 1024 * 1024)
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"upload is over the {server.max_upload_mb:g} MB limit")
    decode = partial(decode_audio_file, max_seconds=server.max_audio_seconds)
    return await services.models.stt_runner.run(decode, data)
