"""OpenAI-compatible routes under /v1, so off-the-shelf clients (the ``openai`` package, tools that speak the
OpenAI API) can use the mentor: models, transcriptions, speech and chat completions. Parse, authorize, delegate:
chat turns go through the one turn lifecycle (``MentorService.turn``), with emotion and the safety gate.

What differs from OpenAI (docs/api.md has the whole list): ``model`` is accepted whatever it names (the server runs
its configured models and reports their ids); transcriptions have no word timestamps (``timestamp_granularities``
with ``word`` is a 400) and verbose formats carry one segment over the whole recording; chat continues a stored
session (``X-Session-ID`` or ``user``) instead of reading the history from ``messages``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from functools import partial
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Response, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.types import Send

from backend.api.deps import CallerDep, ServicesDep
from backend.api.uploads import decode_upload
from backend.core.audio_encode import MEDIA_TYPES, can_encode, encode_compressed
from backend.core.audio_utils import encode_wav
from backend.core.exceptions import BadRequest, ClarityError, NotFound, SessionNotFound
from backend.models.messages import OUTPUT_RATES
from backend.models.openai_api import (
    CHAT_MODEL,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    ChunkChoice,
    ClarityExtra,
    Delta,
    ModelCard,
    ModelList,
    Safety,
    SpeechRequest,
    TranscriptionFormat,
    TranscriptionSegment,
    TranscriptionVerbose,
    Usage,
    sse_error,
)
from backend.services.container import Services
from backend.services.mentor_service import Turn

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
log = logging.getLogger(__name__)

STT_MODELS = ("whisper-1", "claritymentor-stt")
TTS_MODELS = ("tts-1", "tts-1-hd", "claritymentor-tts")
SPEECH_RATE = 24_000  # OpenAI's speech is 24 kHz in every format (raw pcm has no header to say so)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
# OpenAI's voices on espeak-ng voices (engines with one voice speak them all with it). Other names are passed to
# the engine as its own voice names ("en-us+f3"); an unknown one is a 400.
OPENAI_VOICES: dict[str, str] = {
    "alloy": "en-us",
    "ash": "en-us+m3",
    "ballad": "en-gb-x-rp+m2",
    "cedar": "en-us+m2",
    "coral": "en-us+f2",
    "echo": "en-gb-x-rp+m3",
    "fable": "en-gb-scotland",
    "marin": "en-us+f4",
    "nova": "en-us+f3",
    "onyx": "en-us+m7",
    "sage": "en-gb-x-rp",
    "shimmer": "en-gb+f4",
    "verse": "en-029",
}
_STARTED = int(time.time())


def _cards(services: Services) -> list[ModelCard]:
    engines = services.models.engines
    card = partial(ModelCard, created=_STARTED)
    cards = [card(id=CHAT_MODEL, capability="chat", engine=engines.llm.name)]
    cards += [card(id=i, capability="transcription", engine=engines.stt.name) for i in STT_MODELS]
    cards += [card(id=i, capability="speech", engine=engines.tts.name) for i in TTS_MODELS]
    return cards


@router.get("/models")
async def list_models(services: ServicesDep, _caller: CallerDep) -> ModelList:
    """The model ids this server answers to (any ``model`` value is accepted; these are what it runs)."""
    return ModelList(data=_cards(services))


@router.get("/models/{model_id}")
async def get_model(model_id: str, services: ServicesDep, _caller: CallerDep) -> ModelCard:
    for card in _cards(services):
        if card.id == model_id:
            return card
    raise NotFound(f"model {model_id!r} not found; GET /v1/models lists them", code="model_not_found")


# ---- transcriptions --------------------------------------------------------------------------------------------
def _clock(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def _subtitles(text: str, duration: float, fmt: str) -> str:
    """One cue over the whole recording (none for silence)."""
    sep = "," if fmt == "srt" else "."
    cue = f"{_clock(0.0, sep)} --> {_clock(duration, sep)}\n{text}\n"
    if fmt == "srt":
        return f"1\n{cue}" if text else ""
    return "WEBVTT\n\n" + (cue if text else "")


@router.post("/audio/transcriptions", response_model=None)
async def transcriptions(
    services: ServicesDep,
    _caller: CallerDep,
    file: Annotated[UploadFile, File(description="audio: WAV, FLAC, OGG, MP3, M4A, WebM...")],
    model: Annotated[str, Form(description="accepted whatever it names")] = "whisper-1",
    language: Annotated[str | None, Form(description="ISO-639-1; must match stt.language when that is set")] = None,
    prompt: Annotated[str | None, Form(description="accepted and ignored")] = None,
    response_format: Annotated[TranscriptionFormat, Form()] = "json",
    temperature: Annotated[float | None, Form(description="accepted and ignored")] = None,
    timestamp_granularities: Annotated[
        list[str] | None, Form(alias="timestamp_granularities[]", description="segment only; word is a 400")
    ] = None,
) -> Response:
    """Speech to text. ``verbose_json``, ``srt`` and ``vtt`` carry one segment spanning the whole recording: the
    engine returns text without timings, so word timestamps are refused rather than invented."""
    granularities = set(timestamp_granularities or [])
    if "word" in granularities:
        raise BadRequest(
            "word timestamps are not available: this server's speech-to-text returns text only "
            "(timestamp_granularities may be [\"segment\"], which gives one segment over the whole recording)",
            code="word_timestamps_unavailable",
        )
    if granularities - {"segment"}:
        raise BadRequest(f"unknown timestamp_granularities {sorted(granularities - {'segment'})}; use segment")
    configured = services.settings.stt.language
    if language and configured and language.split("-")[0].lower() != configured.lower():
        raise BadRequest(
            f"this server transcribes {configured!r} only (stt.language); got language={language!r}",
            code="unsupported_language",
        )
    audio, duration = await decode_upload(services, file)
    result = await services.stt.transcribe(audio)
    text, duration = result.text.strip(), round(duration, 3)
    if response_format == "json":
        return JSONResponse({"text": text})
    if response_format == "text":
        return PlainTextResponse(text)
    if response_format == "verbose_json":
        segments = [TranscriptionSegment(end=duration, text=text)] if text else []
        verbose = TranscriptionVerbose(language=result.language, duration=duration, text=text, segments=segments)
        return JSONResponse(verbose.model_dump(mode="json"))
    media = "text/vtt" if response_format == "vtt" else "application/x-subrip"
    return PlainTextResponse(_subtitles(text, duration, response_format), media_type=media)


# ---- speech ----------------------------------------------------------------------------------------------------
def _engine_voice(services: Services, requested: str) -> str | None:
    """The engine voice for ``requested`` (None: the engine's own voice)."""
    name = requested.strip()
    wanted = OPENAI_VOICES.get(name.lower(), name)
    if services.tts.has_voice(wanted):
        return wanted
    if name.lower() in OPENAI_VOICES:
        return None
    raise BadRequest(
        f"unknown voice {requested!r}: use one of {', '.join(OPENAI_VOICES)} or a voice the engine has",
        code="unknown_voice",
    )


@router.post(
    "/audio/speech",
    response_class=Response,
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}}},
)
async def speech(body: SpeechRequest, services: ServicesDep, _caller: CallerDep) -> Response:
    """Text to speech, mono, 24 kHz unless ``sample_rate`` says otherwise (``pcm``: raw 16-bit little-endian).
    ``speed`` scales espeak's words per minute (espeak cannot go below 80 wpm: with the default 165 wpm, speeds
    under about 0.5 sound like 0.5); engines without a speed control ignore it."""
    text = body.input.strip()
    if not text:
        raise BadRequest("input is empty", code="empty_input")
    services.mentor.check_length(text)
    fmt = body.response_format
    if fmt not in ("wav", "pcm") and not can_encode(fmt):
        raise BadRequest(f"response_format {fmt!r} is not available here; use wav or pcm",
                         code="unsupported_response_format")
    rate = body.sample_rate or SPEECH_RATE
    if rate not in OUTPUT_RATES or (fmt == "opus" and rate not in OPUS_RATES):
        allowed = [r for r in OUTPUT_RATES if fmt != "opus" or r in OPUS_RATES]
        raise BadRequest(f"sample_rate must be one of {allowed} for {fmt}", code="invalid_sample_rate")
    voice = _engine_voice(services, body.voice)
    pcm = await services.tts.synthesize(text, rate, voice=voice, speed=body.speed)
    runner = services.models.tts_runner
    if fmt == "pcm":
        audio = pcm.astype("<i2").tobytes()
    elif fmt == "wav":
        audio = await runner.run(encode_wav, pcm, rate)
    else:
        audio = await runner.run(encode_compressed, pcm, rate, fmt)
    headers = {"X-Voice": voice or services.settings.tts.voice, "X-Sample-Rate": str(rate)}
    return Response(content=audio, media_type=MEDIA_TYPES[fmt], headers=headers)


# ---- chat ------------------------------------------------------------------------------------------------------
def _user_text(body: ChatRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            text = message.text().strip()
            if text:
                return text
            break
    raise BadRequest("messages needs a last user message with text", code="no_user_message")


async def _session_for(services: Services, owner: str | None, header: str | None, user: str | None) -> str:
    """``X-Session-ID`` must name one of the caller's sessions (else 404); ``user`` continues one when it names
    it (OpenAI clients put any end-user id there, so otherwise it is ignored); else a new session."""
    if header:
        if not await services.sessions.exists(header, owner=owner):
            raise SessionNotFound(f"session {header!r} not found")
        return header
    if user and len(user) <= 64 and await services.sessions.exists(user, owner=owner):
        return user
    return (await services.sessions.create(owner=owner)).session_id


def _extra(turn: Turn) -> ClarityExtra:
    crisis = turn.crisis_category is not None
    return ClarityExtra(
        session_id=turn.session_id,
        turn_id=turn.turn_id,
        emotion=turn.emotion,
        safety=Safety(crisis=crisis, category=turn.crisis_category),
        outcome=turn.outcome,
    )


def _usage(services: Services, turn: Turn) -> Usage:
    count = services.models.engines.llm.count_tokens
    prompt = sum(count(m.content) for m in turn.messages) if turn.messages else count(turn.text)
    completion = turn.tokens or count(turn.reply_text)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _finish(turn: Turn) -> ChunkChoice:
    return ChunkChoice(delta=Delta(), finish_reason="content_filter" if turn.guard_code else "stop")


async def _chunks(
    services: Services, session_id: str, text: str, include_usage: bool
) -> AsyncGenerator[str, None]:
    """The SSE body. Its content chunks join to exactly the stored reply. If the client goes away, the response
    closes this generator (or cancels it mid-step): either way the lifecycle stores the turn as disconnected."""
    mentor = services.mentor
    created = int(time.time())
    closed = False
    try:
        async with mentor.turn(session_id, text) as turn:
            chunk = partial(ChatCompletionChunk, id=f"chatcmpl-{turn.turn_id}", created=created)
            try:
                first = ChunkChoice(delta=Delta(role="assistant", content=""))
                yield chunk(choices=[first], claritymentor=_extra(turn)).sse()
                async for sentence in mentor.sentences(turn):
                    piece = sentence if len(turn.sentences_out) == 1 else " " + sentence
                    yield chunk(choices=[ChunkChoice(delta=Delta(content=piece))]).sse()
            except GeneratorExit:  # closed at a yield: the lifecycle knows cancellation, not GeneratorExit
                closed = True
                raise asyncio.CancelledError from None
        services.telemetry.turns.labels("openai", turn.outcome or "completed").inc()
        yield chunk(choices=[_finish(turn)]).sse()
        if include_usage:
            yield chunk(choices=[], usage=_usage(services, turn)).sse()
        yield "data: [DONE]\n\n"
    except asyncio.CancelledError:
        if not closed:
            raise
    except ClarityError as exc:
        yield sse_error(exc.code, exc.detail, exc.status_code)
    except Exception:
        log.exception("streamed chat turn failed")
        yield sse_error("internal_error", "internal server error", 500)


class _ClosingStream(StreamingResponse):
    """Closes its body generator however the response ends: Starlette leaves a generator that a disconnect
    interrupted between two chunks to the garbage collector, and the turn must be stored now."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


@router.post("/chat/completions", response_model=None, responses={200: {"model": ChatCompletion}})
async def chat_completions(
    body: ChatRequest,
    services: ServicesDep,
    caller: CallerDep,
    x_session_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """The last user message is this turn's text; the conversation so far is the stored session's (named by
    ``X-Session-ID`` or ``user``; a new one otherwise, returned in the ``X-Session-ID`` response header).
    ``stream: true`` sends one chunk per sentence, then ``data: [DONE]``."""
    text = _user_text(body)
    services.mentor.check_length(text)
    session_id = await _session_for(services, caller.owner, x_session_id, body.user)
    headers = {"X-Session-ID": session_id}
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        stream = _chunks(services, session_id, text, include_usage)
        headers |= {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return _ClosingStream(stream, media_type="text/event-stream", headers=headers)
    mentor = services.mentor
    async with mentor.turn(session_id, text) as turn:
        async for _sentence in mentor.sentences(turn):
            pass
    services.telemetry.turns.labels("openai", turn.outcome or "completed").inc()
    finish = _finish(turn).finish_reason or "stop"
    completion = ChatCompletion(
        id=f"chatcmpl-{turn.turn_id}",
        created=int(time.time()),
        choices=[Choice(message=AssistantMessage(content=turn.reply_text), finish_reason=finish)],
        usage=_usage(services, turn),
        claritymentor=_extra(turn),
    )
    return JSONResponse(completion.model_dump(mode="json"), headers=headers)
