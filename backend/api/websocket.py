"""/ws/voice: check the Origin, authorize, take a connection slot, pick the session, run a VoiceSession.

Keys: ``Authorization: Bearer`` / ``X-API-Key`` headers (scripts), a ``bearer.<key>`` subprotocol next to
``clarity`` in ``Sec-WebSocket-Protocol``, or a first ``{"type":"auth","api_key":...}`` message (browsers).
Never in the URL. A wrong or missing key closes with 1008 before any model runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from backend.api.deps import header_key, match_key
from backend.core.logging import bind_context
from backend.models.messages import Error
from backend.services.container import Services
from backend.services.limits import heartbeat_forever
from backend.services.voice_session import VoiceSession
from backend.services.voice_transport import CLOSE_POLICY, CLOSE_RESTART

router = APIRouter()
log = logging.getLogger(__name__)

CLOSE_SESSION_NOT_FOUND = 4404
CLOSE_TRY_AGAIN_LATER = 1013
SUBPROTOCOL = "clarity"
AUTH_WAIT_S = 10.0


def origin_allowed(ws: WebSocket, allowed: list[str]) -> bool:
    """No Origin (a script): allowed. A browser: same origin as the Host, or listed (``*`` allows any)."""
    origin = ws.headers.get("origin")
    if origin is None or "*" in allowed or origin in allowed:
        return True
    return urlsplit(origin).netloc == ws.headers.get("host")


def _offered_key(ws: WebSocket) -> tuple[str | None, str | None]:
    """(key from the subprotocols, the subprotocol to answer with)."""
    offered = list(ws.scope.get("subprotocols") or [])
    key = next((p.removeprefix("bearer.") for p in offered if p.startswith("bearer.")), None)
    answer = SUBPROTOCOL if SUBPROTOCOL in offered else (offered[0] if offered else None)
    return key, answer


async def _refuse(ws: WebSocket, code: str, message: str, close_code: int) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(Error(code=code, message=message).model_dump_json())
        await ws.close(code=close_code, reason=code)


async def _key_from_first_message(ws: WebSocket) -> str | None:
    try:
        raw = await asyncio.wait_for(ws.receive_text(), AUTH_WAIT_S)
        data = json.loads(raw)
    except (TimeoutError, ValueError, KeyError, RuntimeError):
        return None
    if isinstance(data, dict) and data.get("type") == "auth" and isinstance(data.get("api_key"), str):
        return str(data["api_key"])
    return None


@router.websocket("/ws/voice")
async def voice(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    if not origin_allowed(ws, services.settings.server.cors_origins):
        await ws.close(code=CLOSE_POLICY)  # before the handshake: the client gets HTTP 403
        return
    if "api_key" in ws.query_params:
        await ws.close(code=CLOSE_POLICY)
        return
    sub_key, subprotocol = _offered_key(ws)
    await ws.accept(subprotocol=subprotocol)
    key = header_key(ws.headers) or sub_key
    if key is None and services.settings.security.keys():
        key = await _key_from_first_message(ws)
    ok, owner = match_key(services, key)
    if not ok:
        await _refuse(ws, "unauthorized", "missing or wrong API key", CLOSE_POLICY)
        return
    slot = await services.limits.acquire_connection()
    if slot is None:
        await _refuse(ws, "too_many_connections", "the server is at its connection limit; retry shortly",
                      CLOSE_TRY_AGAIN_LATER)
        return
    heartbeat = asyncio.create_task(heartbeat_forever(services.limits, slot))
    session: VoiceSession | None = None
    try:
        requested = ws.query_params.get("session_id")
        if requested and not await services.sessions.exists(requested, owner=owner):
            await _refuse(ws, "session_not_found", f"session {requested!r} not found", CLOSE_SESSION_NOT_FOUND)
            return
        session_id = requested or (await services.sessions.create(owner=owner)).session_id
        bind_context(session_id=session_id)
        session = VoiceSession(ws, services, session_id, owner)
        services.active_connections.add(session)
        services.telemetry.connections.inc()
        # The session runs in its own task: if this handler is cancelled (a force-cancel at shutdown, a test
        # client tearing down), the session still ends its own way and stores the turn in flight.
        run = asyncio.ensure_future(session.run())
        try:
            gone = await asyncio.shield(run)
        except asyncio.CancelledError:
            session.stop("server_shutdown", CLOSE_RESTART)
            raise
        log.info("voice connection ended: %s", gone.reason)
        if gone.close_code is not None:
            with contextlib.suppress(Exception):
                await ws.close(code=gone.close_code, reason=gone.reason)
    except WebSocketDisconnect:
        pass
    finally:
        heartbeat.cancel()
        if session is not None:
            services.active_connections.discard(session)
            services.telemetry.connections.dec()
        with contextlib.suppress(Exception):  # Redis gone: the slot expires with its heartbeat
            await services.limits.release_connection(slot)
