"""Dependencies: services from app.state (tests inject fakes without globals), the caller's identity from its
API key (headers only on REST), and per-caller rate limits."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response

from backend.core.exceptions import BadRequest, RateLimited, Unauthorized
from backend.services.container import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@dataclass(frozen=True, slots=True)
class Caller:
    owner: str | None  # digest of the key: owns the sessions it creates (None when no keys are configured)
    rate_key: str  # what the rate limit counts against: the key's digest, or the client address


def owner_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def match_key(services: Services, given: str | None) -> tuple[bool, str | None]:
    """(accepted, owner). With no keys configured everyone is accepted and owns the shared, keyless sessions."""
    keys = services.settings.security.keys()
    if not keys:
        return True, None
    if given is None:
        return False, None
    for key in keys:
        if hmac.compare_digest(given.encode(), key.encode()):
            return True, owner_of(key)
    return False, None


def header_key(headers: object) -> str | None:
    get = getattr(headers, "get", lambda _k: None)
    auth = get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return str(auth[7:].strip())
    value = get("x-api-key")
    return str(value) if value is not None else None


async def authorize(request: Request, response: Response) -> Caller:
    """Authenticate by header, then count the request against the caller's rate limit (429 + Retry-After)."""
    services = get_services(request)
    if "api_key" in request.query_params:
        raise BadRequest(
            "API keys are not accepted in the URL (they end up in logs); send Authorization: Bearer <key>",
            code="api_key_in_url",
        )
    ok, owner = match_key(services, header_key(request.headers))
    if not ok:
        raise Unauthorized("missing or wrong API key (Authorization: Bearer <key> or X-API-Key)")
    client = request.client.host if request.client else "unknown"
    caller = Caller(owner, owner or f"addr:{client}")
    retry_after = await services.limits.hit(caller.rate_key)
    if retry_after is not None:
        services.telemetry.errors.labels("rate_limited").inc()
        raise RateLimited(retry_after)
    return caller


ServicesDep = Annotated[Services, Depends(get_services)]
CallerDep = Annotated[Caller, Depends(authorize)]
