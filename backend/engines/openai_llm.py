"""Any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp's server, OpenAI itself) as the LanguageModel.

The service layer has already built persona, history, emotion context and safety wording into ``messages``: this
engine only sends them to ``{base_url}/chat/completions`` with ``stream: true`` and yields the text deltas of the
server-sent events. The API key is read from the environment variable named by ``api_key_env``, never from YAML.

Only options every such server accepts are sent (model, messages, max_tokens, temperature, stream): OpenAI answers
400 to unknown fields such as ``repetition_penalty``, so the server's own defaults apply there.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from backend.config import LLMSettings
from backend.core.exceptions import ModelError
from backend.engines.protocols import ChatMessage

log = logging.getLogger(__name__)

# Failures that happen before the request reached the server: safe to retry, nothing was generated yet.
CONNECT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout)
BACKOFF_BASE_S = 0.25


def auth_headers(api_key_env: str) -> dict[str, str]:
    """``Authorization: Bearer <key>`` when the named environment variable is set (local servers need none)."""
    key = os.environ.get(api_key_env, "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def remote_name(api_model: str | None, base_url: str | None) -> str:
    return f"{api_model} (OpenAI-compatible server at {base_url})"


def server_error(response: httpx.Response, what: str) -> ModelError:
    """A readable error from a non-2xx answer (the body is read, at most 500 characters of it are kept)."""
    try:
        body = response.read().decode("utf-8", "replace")[:500]
    except httpx.HTTPError:
        body = ""
    return ModelError(f"{what} answered HTTP {response.status_code}: {body}".strip(), status_code=502)


def parse_event(line: str) -> tuple[bool, str]:
    """One SSE line → (stream finished, text piece). Comments, blank lines and role-only deltas give ''."""
    if not line.startswith("data:"):
        return False, ""
    data = line.removeprefix("data:").strip()
    if data == "[DONE]":
        return True, ""
    event: dict[str, Any] = json.loads(data)
    if event.get("error"):
        raise ModelError(f"the language model server reported an error: {event['error']}", status_code=502)
    choices = event.get("choices") or []
    if not choices:
        return False, ""
    content = (choices[0].get("delta") or {}).get("content")
    return False, content if isinstance(content, str) else ""


class OpenAICompatLLM:
    device = "remote"

    def __init__(self, settings: LLMSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        if not settings.base_url or not settings.api_model:
            raise ValueError("llm.engine openai needs llm.base_url and llm.api_model")
        self.name = remote_name(settings.api_model, settings.base_url)
        self._settings = settings
        self._client = httpx.Client(
            base_url=settings.base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(settings.timeout_s),
            headers=auth_headers(settings.api_key_env),
            transport=transport,
        )

    def count_tokens(self, text: str) -> int:
        """An approximation, not the server's tokenizer: about 4 characters per token for English text (rounded
        up). It only sizes the history budget, where erring a little either way is harmless."""
        return math.ceil(len(text) / 4)

    def _payload(self, messages: Sequence[ChatMessage], max_new_tokens: int) -> dict[str, Any]:
        return {
            "model": self._settings.api_model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_new_tokens,
            "temperature": self._settings.temperature,
            "stream": True,
        }

    def _open(self, payload: dict[str, Any], cancel: threading.Event) -> httpx.Response | None:
        """Send the request; retry with exponential backoff on connection failures only (nothing generated yet).
        None when ``cancel`` was set while waiting to retry."""
        attempts = self._settings.retries + 1
        for attempt in range(attempts):
            request = self._client.build_request("POST", "chat/completions", json=payload)
            try:
                return self._client.send(request, stream=True)
            except CONNECT_ERRORS as exc:
                if attempt + 1 == attempts:
                    raise ModelError(
                        f"cannot reach the language model server at {self._settings.base_url}: {exc}", status_code=502
                    ) from exc
                delay = BACKOFF_BASE_S * 2**attempt
                log.warning("LLM server unreachable (%s); retry %d/%d in %.2fs", exc, attempt + 1, attempts - 1, delay)
                if cancel.wait(delay):
                    return None
        return None  # unreachable: the loop returns or raises

    def stream(self, messages: Sequence[ChatMessage], max_new_tokens: int, cancel: threading.Event) -> Iterator[str]:
        """Text pieces in order. ``cancel`` is checked between received chunks: once set, the response is closed
        (the server sees the disconnect and stops generating). Closing this iterator closes it as well."""
        if cancel.is_set():
            return
        response = self._open(self._payload(messages, max_new_tokens), cancel)
        if response is None:
            return
        try:
            if response.status_code >= 400:
                raise server_error(response, "the language model server")
            for line in response.iter_lines():
                if cancel.is_set():
                    return
                done, piece = parse_event(line)
                if done:
                    return
                if piece:
                    yield piece
        except httpx.HTTPError as exc:  # broken mid-reply: never retried (part of the answer was sent)
            raise ModelError(f"the language model stream broke: {type(exc).__name__}: {exc}") from exc
        finally:
            response.close()  # an unfinished response is not pooled: the connection closes, the server stops

    def close(self) -> None:
        self._client.close()
