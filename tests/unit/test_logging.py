"""Structured logs: one JSON object per line with the request, session and turn ids; never what the user said."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from backend.core.logging import ContextFilter, JsonFormatter


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_a_crisis_turn_is_logged_as_json_with_its_ids_and_without_the_words(
    client: TestClient, json_lines: io.StringIO
) -> None:
    secret = "I want to kill myself tonight, I have the pills ready"
    response = client.post("/api/text-chat", json={"text": secret}, headers={"X-Request-ID": "req-123"})
    assert response.status_code == 200 and response.json()["safety"] is True
    assert response.headers["x-request-id"] == "req-123"
    entries = [json.loads(line) for line in json_lines.getvalue().splitlines() if line.strip()]
    crisis = [e for e in entries if e["message"].startswith("crisis turn")]
    assert len(crisis) == 1
    assert crisis[0]["request_id"] == "req-123"
    assert crisis[0]["session_id"] == response.json()["session_id"]
    assert len(crisis[0]["turn_id"]) == 12 and crisis[0]["level"] == "warning"
    assert not any("pills" in line or "kill myself" in line for line in json_lines.getvalue().splitlines())
