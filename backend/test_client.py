"""ClarityMentor client: an importable async client library, and the command-line WebSocket client.

Library::

    async with ClarityMentorClient("http://localhost:2323", api_key="...") as client:
        ready = await client.connect(sample_rate=16000)          # the key goes in a first {"type":"auth"} message
        await client.send_audio(pcm16, realtime=False)            # numpy int16 or bytes, at the declared rate
        await client.end_of_speech()
        turn = await client.receive_turn()                        # transcript, emotion, reply text and audio
        print(turn.transcript, turn.response, len(turn.audio))
        print(await client.text_chat("hello", session_id=ready["session_id"]))   # REST, Authorization: Bearer

Command line (unchanged options, plus ``--api-key`` and ``--fast``)::

    python -m backend.test_client [file.wav] [--url ws://localhost:2323/ws/voice] [--interrupt-after 1.0]

Streams the WAV in real time (any rate/channels; sent as PCM16 mono at its own rate, declared in a config
message). Without a file it speaks a built-in prompt with espeak-ng. Prints every message with timestamps,
partial transcripts and reply deltas live, saves the reply audio to reply.wav and prints the
end-of-speech -> first-audio latency as the client measured it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import numpy as np
import numpy.typing as npt
import soundfile as sf

from backend.core.audio_utils import espeak

DEFAULT_PROMPT = "I feel really stressed about my exam tomorrow."
CHUNK_MS = 20


class ClientError(Exception):
    """The server refused or failed a request: ``code`` is its error code, ``status`` the HTTP status or the
    WebSocket close code."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" + (f" ({status})" if status is not None else ""))
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One message from /ws/voice: a JSON event (``type`` as sent) or reply audio (``type`` "audio")."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    audio: bytes = b""


@dataclass(slots=True)
class TurnResult:
    """Everything one turn sent, in order, with the parts most callers want."""

    events: list[ServerEvent] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    sample_rate: int | None = None

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((e.data for e in self.events if e.type == kind), None)

    @property
    def transcript(self) -> str | None:
        return (self.first("transcript") or {}).get("text")

    @property
    def response(self) -> str | None:
        return (self.first("response") or {}).get("text")

    @property
    def emotion(self) -> dict[str, Any] | None:
        event = self.first("emotion")
        return None if event is None else dict(event["data"])

    @property
    def outcome(self) -> str | None:
        event = self.first("turn_end")
        return None if event is None else str(event.get("outcome", "completed"))


def _base_urls(url: str) -> tuple[str, str]:
    """(http base, WebSocket URL) from either an http(s) base URL or a ws(s) URL of /ws/voice."""
    parts = urlsplit(url)
    secure = parts.scheme in ("https", "wss")
    path = parts.path.rstrip("/").removesuffix("/ws/voice")
    http = urlunsplit(("https" if secure else "http", parts.netloc, path, "", ""))
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, path + "/ws/voice", "", ""))
    return http, ws


class ClarityMentorClient:
    """Async client for one voice connection at a time plus the REST API. Not safe for concurrent readers: one
    task iterates :meth:`events` (or calls :meth:`receive_turn`); others may send."""

    def __init__(self, url: str = "http://localhost:2323", *, api_key: str | None = None, timeout_s: float = 30.0):
        self.http_url, self.ws_url = _base_urls(url)
        self.api_key = api_key
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=self.http_url, headers=headers, timeout=timeout_s)
        self._ws: Any = None
        self._skip_auth_error = False
        self.session_id: str | None = None
        self.input_rate = 16000
        self.output_rate: int | None = None

    async def __aenter__(self) -> ClarityMentorClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---- voice ----------------------------------------------------------------------------------------------
    async def connect(
        self, session_id: str | None = None, *, sample_rate: int | None = None, output_sample_rate: int | None = None
    ) -> dict[str, Any]:
        """Open /ws/voice (joining ``session_id`` if given) and return its ``ready`` event; with a key, the key is
        the first message. A refusal raises :class:`ClientError` with the close code (1008 unauthorized, 4404
        unknown session, 1013 server full)."""
        import websockets

        url = self.ws_url + (f"?session_id={quote(session_id)}" if session_id else "")
        self._ws = await websockets.connect(url, max_size=None, open_timeout=self.timeout_s)
        if self.api_key:
            await self._ws.send(json.dumps({"type": "auth", "api_key": self.api_key}))
            self._skip_auth_error = True  # a server without keys answers it with already_authenticated
        ready = await self._wait_ready()
        if sample_rate is not None or output_sample_rate is not None:
            ready = await self.config(sample_rate=sample_rate, output_sample_rate=output_sample_rate)
        return ready

    async def config(
        self, *, sample_rate: int | None = None, output_sample_rate: int | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Declare the input and output rates, or join another session; returns the new ``ready``."""
        message: dict[str, Any] = {"type": "config"}
        for key, value in (("sample_rate", sample_rate), ("output_sample_rate", output_sample_rate),
                           ("session_id", session_id)):
            if value is not None:
                message[key] = value
        await self._send_json(message)
        return await self._wait_ready()

    async def _wait_ready(self) -> dict[str, Any]:
        while (event := await self.next_event()) is not None:
            if event.type == "ready":
                self.session_id = str(event.data["session_id"])
                self.input_rate = int(event.data["input_sample_rate"])
                self.output_rate = int(event.data["output_sample_rate"])
                return event.data
            if event.type == "error":  # a refusal: the close (and its code) follows
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ws.wait_closed(), 5)
                raise ClientError(str(event.data.get("code")), str(event.data.get("message")), self.close_code)
        raise ClientError("closed", "the server closed the connection before it was ready", self.close_code)

    @property
    def close_code(self) -> int | None:
        return None if self._ws is None else self._ws.close_code

    async def _send_json(self, message: dict[str, Any]) -> None:
        if self._ws is None:
            raise RuntimeError("not connected: call connect() first")
        await self._ws.send(json.dumps(message))

    async def send_audio(
        self,
        pcm: bytes | npt.NDArray[np.int16],
        *,
        realtime: bool = True,
        speed: float = 1.0,
        chunk_ms: int = CHUNK_MS,
    ) -> None:
        """Send PCM16 mono at the declared input rate in ``chunk_ms`` pieces: paced like a microphone
        (``realtime``; ``speed`` > 1 sends faster), or as fast as the socket takes it."""
        if self._ws is None:
            raise RuntimeError("not connected: call connect() first")
        raw = pcm if isinstance(pcm, bytes) else np.asarray(pcm).astype("<i2").tobytes()
        step = 2 * max(1, self.input_rate * chunk_ms // 1000)
        started = time.monotonic()
        for i, offset in enumerate(range(0, len(raw), step)):
            await self._ws.send(raw[offset : offset + step])
            if realtime:  # against the clock, so slow sends do not add up to drift
                await asyncio.sleep(max(0.0, started + (i + 1) * chunk_ms / 1000 / speed - time.monotonic()))
            else:
                await asyncio.sleep(0)

    async def send_silence(self, seconds: float, *, realtime: bool = True, speed: float = 1.0) -> None:
        """Trailing silence lets the server's VAD end the turn, as a live microphone would."""
        await self.send_audio(np.zeros(int(seconds * self.input_rate), dtype=np.int16), realtime=realtime, speed=speed)

    async def end_of_speech(self) -> None:
        await self._send_json({"type": "end_of_speech"})

    async def interrupt(self) -> None:
        await self._send_json({"type": "interrupt"})

    async def playback(self, played_ms: float, turn_id: str | None = None) -> None:
        await self._send_json({"type": "playback", "played_ms": played_ms, "turn_id": turn_id})

    async def ping(self) -> None:
        await self._send_json({"type": "ping"})

    async def next_event(self) -> ServerEvent | None:
        """The next message; None once the server has closed the socket (see :attr:`close_code`)."""
        import websockets

        if self._ws is None:
            raise RuntimeError("not connected: call connect() first")
        while True:
            try:
                message = await self._ws.recv()
            except websockets.ConnectionClosed:
                return None
            if isinstance(message, bytes):
                return ServerEvent("audio", audio=message)
            data = json.loads(message)
            if self._skip_auth_error and data.get("code") == "already_authenticated":
                self._skip_auth_error = False
                continue
            return ServerEvent(str(data.get("type")), data)

    async def events(self) -> AsyncIterator[ServerEvent]:
        """Every message until the server closes the socket."""
        while (event := await self.next_event()) is not None:
            yield event

    async def receive_turn(self, timeout_s: float | None = 60.0) -> TurnResult:
        """Collect one turn: until ``turn_end`` (or a ``no_speech`` error, which creates no turn)."""
        result = TurnResult()

        async def collect() -> None:
            while (event := await self.next_event()) is not None:
                result.events.append(event)
                if event.type == "audio":
                    result.audio.extend(event.audio)
                elif event.type == "audio_start":
                    result.sample_rate = int(event.data["sample_rate"])
                elif event.type == "turn_end" or (event.type == "error" and event.data.get("code") == "no_speech"):
                    return

        await asyncio.wait_for(collect(), timeout_s)
        return result

    async def disconnect(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def close(self) -> None:
        await self.disconnect()
        await self._http.aclose()

    # ---- REST -----------------------------------------------------------------------------------------------
    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            is_json = response.headers.get("content-type", "").startswith("application/json")
            body = response.json() if is_json else {}
            code, detail = body.get("code", f"http_{response.status_code}"), body.get("detail", response.text)
            raise ClientError(str(code), str(detail), response.status_code)
        return None if response.status_code == 204 else response.json()

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/api/health")
        return result

    async def create_session(self) -> str:
        return str((await self._request("POST", "/api/sessions"))["session_id"])

    async def text_chat(self, text: str, session_id: str | None = None) -> dict[str, Any]:
        """One text turn: ``{"session_id", "response", "emotion", "safety"}``."""
        body: dict[str, Any] = {"text": text} | ({"session_id": session_id} if session_id else {})
        result: dict[str, Any] = await self._request("POST", "/api/text-chat", json=body)
        return result

    async def history(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", f"/api/sessions/{quote(session_id)}/history")
        return result

    async def list_sessions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._request("GET", "/api/sessions"))["sessions"]
        return result

    async def delete_session(self, session_id: str) -> None:
        await self._request("DELETE", f"/api/sessions/{quote(session_id)}")


# ---- command line --------------------------------------------------------------------------------------------
def load_audio(path: str | None, prompt: str, voice: str) -> tuple[np.ndarray, int]:
    if path:
        audio, rate = sf.read(path, dtype="int16", always_2d=True)
        return audio.mean(axis=1).astype(np.int16), int(rate)
    try:
        return espeak(prompt, voice=voice)
    except FileNotFoundError as exc:
        sys.exit(f"no WAV given and {exc}")


async def run(args: argparse.Namespace) -> int:
    pcm, rate = load_audio(args.wav, args.text, args.voice)
    t0 = time.monotonic()
    reply = bytearray()
    reply_rate = 22050
    speech_end: float | None = None
    first_audio: float | None = None
    interrupted_sent = False

    def stamp() -> str:
        return f"[{time.monotonic() - t0:7.3f}s]"

    async with ClarityMentorClient(args.url, api_key=args.api_key) as client:
        try:
            await client.connect(args.session_id, sample_rate=rate)
        except ClientError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1

        async def send_audio() -> None:
            nonlocal speech_end
            await client.send_audio(pcm, realtime=not args.fast, speed=args.speed)
            speech_end = time.monotonic()
            if args.fast:
                await client.end_of_speech()
            else:
                await client.send_silence(1.0, speed=args.speed)

        sender = asyncio.create_task(send_audio())
        async for event in client.events():
            if event.type == "audio":
                if first_audio is None:
                    first_audio = time.monotonic()
                    print(f"{stamp()} <audio> first frame ({len(event.audio)} bytes)")
                reply.extend(event.audio)
                if args.interrupt_after is not None and not interrupted_sent:
                    if time.monotonic() - first_audio >= args.interrupt_after:
                        interrupted_sent = True
                        await client.interrupt()
                        print(f"{stamp()} -> interrupt")
                continue
            if event.type == "response_delta":
                print(event.data["text"], end="", flush=True)
                continue
            if event.type == "partial_transcript":
                print(f"{stamp()} … {event.data['text']}")
                continue
            if event.type == "audio_start":
                reply_rate = event.data["sample_rate"]
            print(f"{stamp()} {json.dumps(event.data)}")
            if event.type == "turn_end":
                break
            if event.type == "error" and event.data.get("code") == "no_speech":
                break
        sender.cancel()
    if reply:
        sf.write(args.out, np.frombuffer(bytes(reply), dtype="<i2"), reply_rate)
        print(f"saved {len(reply) / 2 / reply_rate:.2f}s of reply audio to {args.out}")
    if speech_end is not None and first_audio is not None:
        print(f"end of speech -> first audio (client-measured): {1000 * (first_audio - speech_end):.0f} ms")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ClarityMentor WebSocket test client")
    parser.add_argument("wav", nargs="?", help="WAV/FLAC file to send (default: espeak-spoken prompt)")
    parser.add_argument("--url", default="ws://localhost:2323/ws/voice")
    parser.add_argument("--text", default=DEFAULT_PROMPT, help="prompt to speak when no file is given")
    parser.add_argument("--voice", default="en-gb-x-rp", help="espeak-ng voice for the built-in prompt")
    parser.add_argument("--session-id", default=None)
    parser.add_argument("--out", default="reply.wav")
    parser.add_argument("--speed", type=float, default=1.0, help="send speed (1.0 = real time)")
    parser.add_argument("--interrupt-after", type=float, default=None, help="send interrupt N s into the reply")
    parser.add_argument("--api-key", default=os.environ.get("CLARITY_API_KEY"),
                        help="API key (default: $CLARITY_API_KEY), sent as the first message")
    parser.add_argument("--fast", action="store_true", help="send the audio at once, then end_of_speech")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
