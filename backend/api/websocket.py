"""/ws/voice: accept, authorize, pick the session, hand the connection to a VoiceSession."""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from backend.api.deps import key_is_valid, presented_key
from backend.models.messages import Error
from backend.services.container import Services
from backend.services.voice_session import VoiceSession

router = APIRouter()
log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_SESSION_NOT_FOUND = 4404
CLOSE_TRY_AGAIN_LATER = 1013


async def _refuse(ws: WebSocket, code: str, message: str, close_code: int) -> None:
    await ws.send_text(Error(code=code, message=message).model_dump_json())
    await ws.close(code=close_code, reason=code)


@router.websocket("/ws/voice")
async def voice(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    await ws.accept()
    if not key_is_valid(services, presented_key(ws.headers, ws.query_params)):
        await _refuse(ws, "unauthorized", "missing or wrong API key", CLOSE_UNAUTHORIZED)
        return
    if len(services.active_connections) >= services.settings.server.max_connections:
        await _refuse(
            ws,
            "too_many_connections",
            "the server is at its connection limit; retry shortly",
            CLOSE_TRY_AGAIN_LATER,
        )
        return
    requested = ws.query_params.get("session_id")
    if requested:
        if not await services.sessions.exists(requested):
            await _refuse(ws, "session_not_found", f"session {requested!r} not found", CLOSE_SESSION_NOT_FOUND)
            return
        session_id = requested
    else:
        session_id = (await services.sessions.create()).session_id
    session = VoiceSession(ws, services, session_id)
    services.active_connections.add(session)
    services.telemetry.connections.inc()
    try:
        await session.run()
    except WebSocketDisconnect:
        pass
    finally:
        services.active_connections.discard(session)
        services.telemetry.connections.dec()
        log.info("voice connection closed (session %s)", session.session_id)
