"""One error shape for REST: {detail, code, error_id}; the error_id is logged with the cause."""

from __future__ import annotations

import logging
import math
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.core.exceptions import ClarityError, RateLimited

log = logging.getLogger("backend.errors")

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
    415: "unsupported_media_type",
}


def _body(status: int, detail: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    error_id = uuid.uuid4().hex[:12]
    log.log(logging.ERROR if status >= 500 else logging.INFO, "error %s %s %s: %s", error_id, status, code, detail)
    return JSONResponse({"detail": detail, "code": code, "error_id": error_id}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClarityError)
    async def _clarity(_request: Request, exc: ClarityError) -> JSONResponse:
        headers = {"Retry-After": str(math.ceil(exc.retry_after_s))} if isinstance(exc, RateLimited) else None
        return _body(exc.status_code, exc.detail, exc.code, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _body(422, f"{where}: {first['msg']}" if where else str(first["msg"]), "validation_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _body(exc.status_code, str(exc.detail), _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}"))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s", error_id, exc_info=exc)
        return JSONResponse(
            {"detail": "internal server error", "code": "internal_error", "error_id": error_id},
            status_code=500,
        )
