"""App factory and lifespan: every model is loaded once into one ModelService before the server says ready."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from backend.api import rest, websocket
from backend.api.errors import install_error_handlers
from backend.config import Settings
from backend.core.exceptions import ModelLoadError
from backend.engines.protocols import EngineSet
from backend.services.container import Services
from backend.services.model_service import ModelService, load_engines, warm_up
from backend.services.session_service import SessionService

log = logging.getLogger("backend")
EngineLoader = Callable[[Settings], EngineSet]


def _display_host(host: str) -> str:
    return "localhost" if host in ("0.0.0.0", "::") else host  # noqa: S104


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
            raise
        models = ModelService(engines, settings)
        sessions = await SessionService.open(settings.sqlalchemy_url, echo=settings.db.echo)
        app.state.services = Services.build(settings, models, sessions)
        host = _display_host(settings.server.host)
        print("✓ All services initialized and ready!", flush=True)
        print(f"  WebSocket: ws://{host}:{settings.server.port}/ws/voice", flush=True)
        print(f"  Health:    http://{host}:{settings.server.port}/api/health", flush=True)
        print(f"  Docs:      http://{host}:{settings.server.port}/docs\n", flush=True)
        try:
            yield
        finally:
            for session in list(app.state.services.active_connections):
                task = getattr(session, "task", None)
                if task is not None:
                    task.cancel()
            await sessions.close()
            await asyncio.to_thread(models.shutdown)
            print("ClarityMentor backend stopped.", flush=True)

    app = FastAPI(
        title="ClarityMentor backend",
        version="0.1.0",
        description="Emotion-aware voice mentor: WebSocket /ws/voice and REST /api.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.server.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    install_error_handlers(app)
    app.include_router(rest.router)
    app.include_router(rest.protected)
    app.include_router(rest.metrics_router)
    app.include_router(websocket.router)
    return app
