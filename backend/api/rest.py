"""REST routes under /api: parse, authorize, delegate."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, File, Response, UploadFile

from backend.api.deps import ServicesDep, require_api_key
from backend.core.audio_utils import decode_audio_file, encode_wav
from backend.core.exceptions import BadRequest, PayloadTooLarge
from backend.models.api import (
    EmotionBrief,
    EmotionRequest,
    EmotionResponse,
    HealthResponse,
    HistoryResponse,
    ModelInfo,
    SessionCreated,
    SpeakRequest,
    TextChatRequest,
    TextChatResponse,
    TimelinePoint,
    TranscribeResponse,
    TurnOut,
)
from backend.models.messages import OUTPUT_RATES

router = APIRouter(prefix="/api")
protected = APIRouter(prefix="/api", dependencies=[Depends(require_api_key)])
metrics_router = APIRouter(dependencies=[Depends(require_api_key)])


@router.get("/health")
async def health(services: ServicesDep) -> HealthResponse:
    return HealthResponse(
        status="healthy",
        models_loaded=True,
        timestamp=datetime.now(UTC),
        models={k: ModelInfo.model_validate(v) for k, v in services.models.describe().items()},
        active_connections=len(services.active_connections),
    )


@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(services: ServicesDep) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(services.telemetry.registry), media_type=CONTENT_TYPE_LATEST)


@protected.post("/sessions", status_code=201)
async def create_session(services: ServicesDep) -> SessionCreated:
    created = await services.sessions.create()
    return SessionCreated(session_id=created.session_id, created_at=created.created_at)


@protected.get("/sessions/{session_id}/history")
async def history(session_id: str, services: ServicesDep) -> HistoryResponse:
    stored = await services.sessions.get(session_id)
    turns = [
        TurnOut(
            role=t.role,
            content=t.content,
            emotion=EmotionBrief(primary_emotion=t.emotion["primary_emotion"], confidence=t.emotion["confidence"])
            if t.emotion
            else None,
            timestamp=t.timestamp,
            interrupted=t.interrupted,
            safety=t.safety,
        )
        for t in stored.turns
    ]
    timeline = [
        TimelinePoint(timestamp=t.timestamp, primary_emotion=t.emotion.primary_emotion, confidence=t.emotion.confidence)
        for t in turns
        if t.emotion is not None
    ]
    return HistoryResponse(
        session_id=stored.session_id, created_at=stored.created_at, turns=turns, emotion_timeline=timeline
    )


@protected.delete("/sessions/{session_id}", status_code=204)
async def delete_session(session_id: str, services: ServicesDep) -> Response:
    await services.sessions.delete(session_id)
    return Response(status_code=204)


@protected.post("/text-chat")
async def text_chat(body: TextChatRequest, services: ServicesDep) -> TextChatResponse:
    prepared, reply = await services.mentor.text_chat(body.text, body.session_id)
    services.telemetry.turns.labels("text", "completed").inc()
    return TextChatResponse(
        session_id=prepared.session_id,
        response=reply,
        emotion=prepared.emotion,
        safety=prepared.crisis_category is not None,
    )


@protected.post("/emotion")
async def emotion(body: EmotionRequest, services: ServicesDep) -> EmotionResponse:
    services.mentor.check_length(body.text)
    scores = await services.emotion.text_scores(body.text)
    label = max(scores, key=scores.__getitem__)
    return EmotionResponse(
        primary_emotion=label,
        confidence=round(scores[label], 4),
        scores={k: round(v, 4) for k, v in scores.items()},
    )


@protected.post("/transcribe")
async def transcribe(services: ServicesDep, file: UploadFile = File(...)) -> TranscribeResponse:  # noqa: B008
    limit = int(services.settings.server.max_upload_mb * 1024 * 1024)
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"upload is over the {services.settings.server.max_upload_mb:g} MB limit")
    audio, duration = await services.models.stt_runner.run(decode_audio_file, data)
    result = await services.stt.transcribe(audio)
    return TranscribeResponse(text=result.text, language=result.language, duration_s=round(duration, 3))


@protected.post("/speak", response_class=Response, responses={200: {"content": {"audio/wav": {}}}})
async def speak(body: SpeakRequest, services: ServicesDep) -> Response:
    services.mentor.check_length(body.text)
    if body.sample_rate is not None and body.sample_rate not in OUTPUT_RATES:
        raise BadRequest(f"sample_rate must be one of {OUTPUT_RATES}", code="invalid_sample_rate")
    rate = body.sample_rate or services.tts.native_rate
    pcm = await services.tts.synthesize(body.text, rate)
    wav = await services.models.tts_runner.run(encode_wav, pcm, rate)
    return Response(content=wav, media_type="audio/wav")
