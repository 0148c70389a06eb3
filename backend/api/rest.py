"""REST routes under /api: parse, authorize, delegate."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, File, Response, UploadFile

from backend.api.deps import CallerDep, ServicesDep, authorize
from backend.api.uploads import decode_upload
from backend.core.audio_utils import encode_wav
from backend.core.exceptions import BadRequest
from backend.models.api import (
    EmotionBrief,
    EmotionRequest,
    EmotionResponse,
    HealthResponse,
    HistoryResponse,
    ModelInfo,
    SessionCreated,
    SessionList,
    SessionSummaryOut,
    SpeakRequest,
    TextChatRequest,
    TextChatResponse,
    TimelinePoint,
    TranscribeResponse,
    TurnOut,
)
from backend.models.messages import OUTPUT_RATES

router = APIRouter(prefix="/api")
protected = APIRouter(prefix="/api")
metrics_router = APIRouter(dependencies=[Depends(authorize)])


@router.get("/health")
async def health(services: ServicesDep) -> HealthResponse:
    return HealthResponse(
        status="healthy",
        models_loaded=True,
        timestamp=datetime.now(UTC),
        models={k: ModelInfo.model_validate(v) for k, v in services.models.describe().items()},
        active_connections=await services.limits.active_connections(),
    )


@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(services: ServicesDep) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(services.telemetry.registry), media_type=CONTENT_TYPE_LATEST)


@protected.post("/sessions", status_code=201)
async def create_session(services: ServicesDep, caller: CallerDep) -> SessionCreated:
    created = await services.sessions.create(owner=caller.owner)
    return SessionCreated(session_id=created.session_id, created_at=created.created_at)


@protected.get("/sessions")
async def list_sessions(services: ServicesDep, caller: CallerDep) -> SessionList:
    """The caller's sessions, most recently active first (at most 50)."""
    found = await services.sessions.list_sessions(owner=caller.owner)
    return SessionList(
        sessions=[SessionSummaryOut(session_id=s.session_id, created_at=s.created_at, updated_at=s.updated_at,
                                    turns=s.turns) for s in found]
    )


@protected.get("/sessions/{session_id}/history")
async def history(session_id: str, services: ServicesDep, caller: CallerDep) -> HistoryResponse:
    stored = await services.sessions.get(session_id, owner=caller.owner)
    turns = [
        TurnOut(
            role=t.role,
            content=t.content,
            emotion=EmotionBrief(primary_emotion=t.emotion.primary_emotion, confidence=t.emotion.confidence)
            if t.emotion
            else None,
            timestamp=t.timestamp,
            interrupted=t.interrupted,
            safety=t.safety,
            outcome=t.outcome,
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
async def delete_session(session_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    await services.sessions.delete(session_id, owner=caller.owner)
    return Response(status_code=204)


@protected.post("/text-chat")
async def text_chat(body: TextChatRequest, services: ServicesDep, caller: CallerDep) -> TextChatResponse:
    turn = await services.mentor.text_chat(body.text, body.session_id, owner=caller.owner)
    services.telemetry.turns.labels("text", turn.outcome or "completed").inc()
    return TextChatResponse(
        session_id=turn.session_id,
        response=turn.reply_text,
        emotion=turn.emotion,
        safety=turn.crisis_category is not None,
    )


@protected.post("/emotion")
async def emotion(body: EmotionRequest, services: ServicesDep, _caller: CallerDep) -> EmotionResponse:
    services.mentor.check_length(body.text)
    scores = await services.emotion.text_scores(body.text)
    label = max(scores, key=scores.__getitem__)
    return EmotionResponse(
        primary_emotion=label,
        confidence=round(scores[label], 4),
        scores={k: round(v, 4) for k, v in scores.items()},
    )


@protected.post("/transcribe")
async def transcribe(
    services: ServicesDep,
    _caller: CallerDep,
    file: UploadFile = File(...),  # noqa: B008
) -> TranscribeResponse:
    audio, duration = await decode_upload(services, file)
    result = await services.stt.transcribe(audio)
    return TranscribeResponse(text=result.text, language=result.language, duration_s=round(duration, 3))


@protected.post("/speak", response_class=Response, responses={200: {"content": {"audio/wav": {}}}})
async def speak(body: SpeakRequest, services: ServicesDep, _caller: CallerDep) -> Response:
    services.mentor.check_length(body.text)
    if body.sample_rate is not None and body.sample_rate not in OUTPUT_RATES:
        raise BadRequest(f"sample_rate must be one of {OUTPUT_RATES}", code="invalid_sample_rate")
    rate = body.sample_rate or services.tts.native_rate
    pcm = await services.tts.synthesize(body.text, rate)
    wav = await services.models.tts_runner.run(encode_wav, pcm, rate)
    return Response(content=wav, media_type="audio/wav")
