"""Dependency aliases: routes receive services from app.state, so tests inject fakes without globals."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from backend.core.exceptions import Unauthorized
from backend.services.container import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def key_is_valid(services: Services, given: str | None) -> bool:
    expected = services.settings.security.api_key
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def presented_key(headers: dict[str, str] | object, query: dict[str, str] | object) -> str | None:
    get_h = getattr(headers, "get", lambda _k: None)
    get_q = getattr(query, "get", lambda _k: None)
    auth = get_h("authorization") or ""
    if auth.lower().startswith("bearer "):
        return str(auth[7:].strip())
    value = get_h("x-api-key") or get_q("api_key")
    return str(value) if value is not None else None


def require_api_key(request: Request) -> None:
    if not key_is_valid(get_services(request), presented_key(request.headers, request.query_params)):
        raise Unauthorized("missing or wrong API key (Authorization: Bearer <key> or X-API-Key)")


ServicesDep = Annotated[Services, Depends(get_services)]
