"""The browser client: ``GET /`` serves the page, ``/static/...`` its ES modules, worklet and stylesheet.

Plain files, no build step: what is in backend/static/ is what the browser runs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    # no-cache: the page names its modules by path, so a stale index could load a mix of old and new modules
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


def mount_web(app: FastAPI) -> None:
    """Serve the web client at ``/`` and its files under ``/static``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
