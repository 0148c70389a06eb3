"""One error hierarchy. REST turns these into ``{detail, code, error_id}``; WebSocket into error events."""

from __future__ import annotations


class ClarityError(Exception):
    """Base error: ``code`` is machine-readable and stable, ``detail`` is for humans."""

    status_code = 500
    code = "internal_error"

    def __init__(self, detail: str, *, code: str | None = None, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code


class BadRequest(ClarityError):
    status_code = 400
    code = "bad_request"


class EmptyAudio(BadRequest):
    code = "empty_audio"


class UnsupportedAudio(ClarityError):
    status_code = 415
    code = "unsupported_audio"


class PayloadTooLarge(ClarityError):
    status_code = 413
    code = "payload_too_large"


class TextTooLong(ClarityError):
    status_code = 422
    code = "text_too_long"


class NotFound(ClarityError):
    status_code = 404
    code = "not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class Unauthorized(ClarityError):
    status_code = 401
    code = "unauthorized"


class RateLimited(ClarityError):
    """Too many requests from one key (or address): 429 with Retry-After."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many requests; retry in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class AudioTooLong(ClarityError):
    status_code = 413
    code = "audio_too_long"


class Overloaded(ClarityError):
    """A bounded queue is full: reject now rather than queue without limit."""

    status_code = 503
    code = "overloaded"


class ModelError(ClarityError):
    status_code = 500
    code = "model_error"


class ModelLoadError(ClarityError):
    """A model failed to load at start-up; names the model and the config key to fix."""

    code = "model_load_failed"

    def __init__(self, model: str, config_key: str, cause: BaseException) -> None:
        super().__init__(f"could not load {model} (config key `{config_key}`): {type(cause).__name__}: {cause}")
        self.model = model
        self.config_key = config_key
