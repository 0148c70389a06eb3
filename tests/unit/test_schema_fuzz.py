"""Schemathesis over the app's own OpenAPI schema, on fake engines behind a real uvicorn: every operation, with and
without the API key, must answer something other than a 5xx, and every error has the one error shape.

The schema is built at import from ``create_app`` (no lifespan needed) so pytest can parametrize by operation;
the lazy ``schemathesis.pytest.from_fixture`` loader does not run under pytest 9.2 (it writes ``Node._nodeid``,
which pytest 9.2 no longer has). The test checks that the live server serves the same schema."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from backend.main import create_app
from tests.conftest import make_settings
from tests.fakes import fake_engines
from tests.live_server import serve_fakes

API_KEY = "fuzz-key"
PUBLIC_PATHS = {"/api/health"}
OPENAPI = create_app(make_settings(Path(tempfile.gettempdir()))).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # A rate limit far above what the run sends: cases must reach the routes, not stop at 429.
    security = {"api_key": API_KEY, "requests_per_minute": 1_000_000}
    with serve_fakes(tmp_path_factory.mktemp("fuzz"), fake_engines(), security=security) as (url, _app):
        yield url


def test_the_fuzzed_schema_is_the_served_one_and_lists_every_route(live_url: str) -> None:
    """Nothing is excluded: the fuzz run below covers all of these operations."""
    assert httpx.get(f"{live_url}/openapi.json").json() == OPENAPI
    paths = set(OPENAPI["paths"])
    assert {"/api/text-chat", "/api/transcribe", "/api/speak", "/v1/chat/completions", "/v1/audio/speech"} <= paths


@schema.parametrize()
@schema.given(authorized=st.booleans())
@settings(
    max_examples=25,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as generated
    suppress_health_check=list(HealthCheck),
    database=None,  # nothing written into the working tree
    derandomize=True,  # the same cases on every CI run
)
def test_no_operation_answers_5xx(case: Any, authorized: bool, live_url: str) -> None:
    headers = {"X-API-Key": API_KEY} if authorized else {}
    response = case.call(base_url=live_url, headers=headers, timeout=20)
    where = f"{case.method} {case.formatted_path} (key: {authorized})"
    assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text[:500]}"
    if not authorized and case.path not in PUBLIC_PATHS:  # refused: 401, or a 4xx found before the key is checked
        assert response.status_code >= 400, f"{where} -> {response.status_code}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"detail", "code", "error_id"}, f"{where} -> {body}"
