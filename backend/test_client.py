"""Command-line WebSocket client for /ws/voice.

    python -m backend.test_client [file.wav] [--url ws://localhost:2323/ws/voice] [--interrupt-after 1.0]

Streams the WAV in real time (any rate/channels; sent as PCM16 mono at its own rate, declared in a config
message). Without a file it speaks a built-in prompt with espeak-ng. Prints every message with timestamps,
partial transcripts and reply deltas live, saves the reply audio to reply.wav and prints the
end-of-speech -> first-audio latency as the client measured it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import numpy as np
import soundfile as sf

from backend.core.audio_utils import espeak

DEFAULT_PROMPT = "I feel really stressed about my exam tomorrow."
CHUNK_MS = 20


def load_audio(path: str | None, prompt: str, voice: str) -> tuple[np.ndarray, int]:
    if path:
        audio, rate = sf.read(path, dtype="int16", always_2d=True)
        return audio.mean(axis=1).astype(np.int16), int(rate)
    try:
        return espeak(prompt, voice=voice)
    except FileNotFoundError as exc:
        sys.exit(f"no WAV given and {exc}")


async def run(args: argparse.Namespace) -> int:
    import websockets

    pcm, rate = load_audio(args.wav, args.text, args.voice)
    t0 = time.monotonic()
    reply = bytearray()
    reply_rate = 22050
    speech_end: float | None = None
    first_audio: float | None = None
    interrupted_sent = False

    def stamp() -> str:
        return f"[{time.monotonic() - t0:7.3f}s]"

    url = args.url + (f"?session_id={args.session_id}" if args.session_id else "")
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "config", "sample_rate": rate}))

        async def send_audio() -> None:
            nonlocal speech_end
            step = rate * CHUNK_MS // 1000
            for i in range(0, len(pcm), step):
                await ws.send(pcm[i : i + step].astype("<i2").tobytes())
                await asyncio.sleep(CHUNK_MS / 1000 / args.speed)
            speech_end = time.monotonic()
            # Trailing silence lets the server's VAD end the turn, as a live microphone would.
            silence = np.zeros(rate * CHUNK_MS // 1000, dtype="<i2").tobytes()
            for _ in range(int(1000 / CHUNK_MS)):
                await ws.send(silence)
                await asyncio.sleep(CHUNK_MS / 1000 / args.speed)

        sender = asyncio.create_task(send_audio())
        async for message in ws:
            if isinstance(message, bytes):
                if first_audio is None:
                    first_audio = time.monotonic()
                    print(f"{stamp()} <audio> first frame ({len(message)} bytes)")
                reply.extend(message)
                if args.interrupt_after is not None and not interrupted_sent and first_audio is not None:
                    if time.monotonic() - first_audio >= args.interrupt_after:
                        interrupted_sent = True
                        await ws.send(json.dumps({"type": "interrupt"}))
                        print(f"{stamp()} -> interrupt")
                continue
            event = json.loads(message)
            kind = event.get("type")
            if kind == "response_delta":
                print(event["text"], end="", flush=True)
                continue
            if kind == "partial_transcript":
                print(f"{stamp()} … {event['text']}")
                continue
            if kind == "audio_start":
                reply_rate = event["sample_rate"]
            print(f"{stamp()} {json.dumps(event)}")
            if kind == "turn_end":
                break
            if kind == "error" and event.get("code") == "no_speech":
                break
        sender.cancel()
    if reply:
        sf.write(args.out, np.frombuffer(bytes(reply), dtype="<i2"), reply_rate)
        print(f"saved {len(reply) / 2 / reply_rate:.2f}s of reply audio to {args.out}")
    if speech_end is not None and first_audio is not None:
        print(f"end of speech -> first audio (client-measured): {1000 * (first_audio - speech_end):.0f} ms")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="ClarityMentor WebSocket test client")
    parser.add_argument("wav", nargs="?", help="WAV/FLAC file to send (default: espeak-spoken prompt)")
    parser.add_argument("--url", default="ws://localhost:2323/ws/voice")
    parser.add_argument("--text", default=DEFAULT_PROMPT, help="prompt to speak when no file is given")
    parser.add_argument("--voice", default="en-gb-x-rp", help="espeak-ng voice for the built-in prompt")
    parser.add_argument("--session-id", default=None)
    parser.add_argument("--out", default="reply.wav")
    parser.add_argument("--speed", type=float, default=1.0, help="send speed (1.0 = real time)")
    parser.add_argument("--interrupt-after", type=float, default=None, help="send interrupt N s into the reply")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
