"""Request body limits enforced while the body is read (before Starlette spools a multipart upload to disk):
a declared Content-Length over the limit is refused at once; a chunked body is cut off at the limit."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large(limit: int) -> tuple[Message, Message]:
    body = json.dumps(
        {
            "detail": f"request body is over the {limit // 1024} KB limit",
            "code": "payload_too_large",
            "error_id": uuid.uuid4().hex[:12],
        }
    ).encode()
    start: Message = {
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimit:
    def __init__(self, app: ASGIApp, *, default_bytes: int, multipart_bytes: int) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.multipart_bytes = multipart_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.multipart_bytes if multipart else self.default_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            for message in _too_large(limit):
                await send(message)
            return
        state: dict[str, Any] = {"received": 0, "exceeded": False, "replaced": False}

        async def limited_receive() -> Message:
            if state["exceeded"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["exceeded"] = True
                    return {"type": "http.disconnect"}  # the app stops reading; its answer is replaced below
            return message

        async def guarded_send(message: Message) -> None:
            if state["exceeded"]:
                if not state["replaced"] and message["type"] == "http.response.start":
                    state["replaced"] = True
                    for replacement in _too_large(limit):
                        await send(replacement)
                return
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
        if state["exceeded"] and not state["replaced"]:
            for message in _too_large(limit):
                await send(message)
