"""App factory and lifespan: every model is loaded once into one ModelService before the server says ready.

``create_app(settings)`` is the factory (tests pass fake engines). ``backend.main:app`` is a module-level app
built from the environment on first access, so the seed's ``uvicorn backend.main:app`` works and importing this
module stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from backend.api import openai_compat, rest, websocket
from backend.api.body_limit import BodyLimit
from backend.api.errors import install_error_handlers
from backend.api.web import mount_web
from backend.config import Settings
from backend.core.exceptions import ModelLoadError
from backend.core.logging import RequestId, configure_logging
from backend.engines.protocols import EngineSet
from backend.services.container import Services
from backend.services.model_service import ModelService, load_engines, warm_up
from backend.services.session_service import SessionService
from backend.services.voice_transport import CLOSE_RESTART

log = logging.getLogger("backend")
EngineLoader = Callable[[Settings], EngineSet]


def _display_host(host: str) -> str:
    return "localhost" if host in ("0.0.0.0", "::") else host  # noqa: S104


async def _close_voice_sessions(services: Services, grace_s: float) -> None:
    """Shutdown: every open voice session stores its in-flight turn and closes with 1012 (service restart)."""
    sessions = list(services.active_connections)
    for session in sessions:
        session.stop("server_shutdown", CLOSE_RESTART)
    if sessions:
        waits = [asyncio.ensure_future(session.finished.wait()) for session in sessions]
        _done, late = await asyncio.wait(waits, timeout=grace_s)
        for task in late:
            task.cancel()
    await services.mentor.drain()


def create_app(settings: Settings | None = None, engine_loader: EngineLoader | None = None) -> FastAPI:
    """Build the app. ``engine_loader`` defaults to the real models; tests pass one returning fakes."""
    settings = settings or Settings()
    loader = engine_loader or load_engines

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        print("\n🧠 ClarityMentor backend starting...", flush=True)
        try:
            engines = await asyncio.to_thread(loader, settings)
            await asyncio.to_thread(warm_up, engines)
        except ModelLoadError as exc:
            print(f"\n✗ {exc.detail}", file=sys.stderr, flush=True)
            log.error("start-up failed: %s", exc.detail)
            raise
        models = ModelService(engines, settings)
        sessions = await SessionService.open(
            settings.sqlalchemy_url, echo=settings.db.echo, run_migrations=settings.db.migrate_on_start
        )
        services = app.state.services = Services.build(settings, models, sessions)
        host = _display_host(settings.server.host)
        if settings.server.host not in ("127.0.0.1", "localhost", "::1") and not settings.security.keys():
            log.warning("listening on %s without API keys: anyone who can reach it can use it "
                        "(set security.api_keys)", settings.server.host)
        print("✓ All services initialized and ready!", flush=True)
        log.info(
            "ready: ws://%s:%s/ws/voice, http://%s:%s/api/health, docs at /docs",
            host, settings.server.port, host, settings.server.port,
        )
        try:
            yield
        finally:
            await _close_voice_sessions(services, settings.server.shutdown_grace_s)
            await services.limits.close()
            await sessions.close()
            await asyncio.to_thread(models.shutdown)
            log.info("ClarityMentor backend stopped")

    app = FastAPI(
        title="ClarityMentor backend",
        version="0.2.0",
        description="Emotion-aware voice mentor: WebSocket /ws/voice and REST /api.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    server = settings.server
    app.add_middleware(
        CORSMiddleware,
        allow_origins=server.cors_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID", "X-Session-ID"],
        expose_headers=["X-Request-ID", "X-Session-ID", "Retry-After"],
    )
    app.add_middleware(
        BodyLimit,
        default_bytes=server.max_json_kb * 1024,
        multipart_bytes=int(server.max_upload_mb * 1024 * 1024) + 64 * 1024,  # + room for the form's headers
    )
    app.add_middleware(RequestId)
    install_error_handlers(app)
    app.include_router(rest.router)
    app.include_router(rest.protected)
    app.include_router(rest.metrics_router)
    app.include_router(websocket.router)
    app.include_router(openai_compat.router)
    mount_web(app)
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    """``backend.main:app``: built from the environment (and the YAML) on first access, not at import."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        settings = Settings()
        configure_logging(settings.server)
        _app = create_app(settings)
    return _app
