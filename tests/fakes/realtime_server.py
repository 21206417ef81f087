"""A fake of OpenAI's Realtime WebSocket API on 127.0.0.1, for the real ``openai`` SDK
(``AsyncOpenAI(base_url=fake.base_url).realtime.connect(model=...)``).

The server runs the ``websockets`` asyncio server in its own thread. Per connection it sends
``session.created``, answers ``session.update`` with ``session.updated``, remembers the text of
``conversation.item.create``, and on ``response.create`` plays the next scripted action (or
``ok``): ``response.created``, ``response.output_audio.delta`` events carrying a real PCM16
24 kHz tone (one burst per word, with silence before and after), the transcript deltas and
``response.output_audio_transcript.done``, then ``response.done`` with usage.

Actions (``fake.script(*actions)``, consumed one per response or per handshake):

- ``RtAction.ok()``; ``RtAction.reword(transcript=None)`` says something else;
- ``RtAction.error(type, code, message)`` sends an ``error`` event instead of a response;
- ``RtAction.rate_limit(message=...)`` an ``error`` event with code ``rate_limit_exceeded``;
- ``RtAction.drop()`` sends a little audio, then aborts the TCP connection mid-response;
- ``RtAction.failed(code, message)`` ``response.done`` with status ``failed``;
- ``RtAction.reject(status)`` refuses the WebSocket handshake with that HTTP status.

``fake.connections`` records each connection: path, headers and every client event received.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import struct
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

RATE = 24000


def tone_pcm(
    words: int,
    word_seconds: float = 0.22,
    gap: float = 0.08,
    lead: float = 0.25,
    tail: float = 0.3,
    freq: float = 220.0,
) -> bytes:
    """PCM16 mono 24 kHz: ``lead`` s of silence, one tone burst per word, ``tail`` s of silence."""
    out = bytearray()
    out += b"\x00\x00" * int(lead * RATE)
    for w in range(max(1, words)):
        n = int(word_seconds * RATE)
        f = freq * (1 + 0.1 * (w % 3))
        for i in range(n):
            env = min(1.0, i / 240, (n - i) / 240)
            out += struct.pack("<h", int(12000 * env * math.sin(2 * math.pi * f * i / RATE)))
        if w < words - 1:
            out += b"\x00\x00" * int(gap * RATE)
    out += b"\x00\x00" * int(tail * RATE)
    return bytes(out)


@dataclass
class RtAction:
    kind: str
    transcript: str | None = None
    detail: dict[str, Any] | None = None  # the error object sent
    status: int = 200

    @classmethod
    def ok(cls) -> RtAction:
        return cls("ok")

    @classmethod
    def reword(cls, transcript: str | None = None) -> RtAction:
        return cls("reword", transcript=transcript)

    @classmethod
    def error(
        cls,
        type: str = "invalid_request_error",
        code: str = "invalid_value",  # noqa: A002
        message: str = "Invalid value for 'voice'.",
    ) -> RtAction:
        return cls("error", detail={"type": type, "code": code, "message": message})

    @classmethod
    def rate_limit(
        cls, message: str = "Rate limit reached for requests. Please try again in 50ms."
    ) -> RtAction:
        return cls(
            "error",
            detail={
                "type": "invalid_request_error",
                "code": "rate_limit_exceeded",
                "message": message,
            },
        )

    @classmethod
    def drop(cls) -> RtAction:
        return cls("drop")

    @classmethod
    def failed(
        cls, code: str = "server_error", message: str = "The server had an error."
    ) -> RtAction:
        return cls("failed", detail={"type": "server_error", "code": code, "message": message})

    @classmethod
    def reject(cls, status: int = 401) -> RtAction:
        return cls("reject", status=status)


@dataclass
class Connection:
    path: str
    headers: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == etype]


class FakeRealtime:
    def __init__(self, api_key: str | None = None, chunk_seconds: float = 0.1):
        self.api_key = api_key
        self.chunk_seconds = chunk_seconds
        self.connections: list[Connection] = []
        self.actions: list[RtAction] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.port = 0

    # -------------------------------------------------------------- control

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *actions: RtAction) -> None:
        with self._lock:
            self.actions.extend(actions)

    def _next(self, handshake: bool) -> RtAction:
        with self._lock:
            if self.actions and (self.actions[0].kind == "reject") == handshake:
                return self.actions.pop(0)
        return RtAction.ok()

    def start(self) -> FakeRealtime:
        self._thread = threading.Thread(target=self._run, name="fake-realtime", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Realtime server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeRealtime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- server

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handler, "127.0.0.1", 0, process_request=self._process_request, max_size=None
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not request.path.startswith("/v1/realtime"):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if (
            self.api_key is not None
            and request.headers.get("Authorization") != f"Bearer {self.api_key}"
        ):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid_api_key\n")
        action = self._next(handshake=True)
        if action.kind == "reject":
            return connection.respond(HTTPStatus(action.status), "refused\n")
        return None

    async def _send(self, ws: ServerConnection, event: dict[str, Any]) -> None:
        event.setdefault("event_id", f"event_{next(self._ids)}")
        await ws.send(json.dumps(event))

    async def _handler(self, ws: ServerConnection) -> None:
        rec = Connection(
            path=ws.request.path, headers={k.lower(): v for k, v in ws.request.headers.raw_items()}
        )
        with self._lock:
            self.connections.append(rec)
        await self._send(
            ws, {"type": "session.created", "session": {"type": "realtime", "id": "sess_1"}}
        )
        text = ""
        session: dict[str, Any] = {}
        try:
            async for raw in ws:
                try:
                    event = json.loads(raw)
                except ValueError:
                    await self._send(
                        ws,
                        {
                            "type": "error",
                            "error": {
                                "type": "invalid_request_error",
                                "code": "invalid_json",
                                "message": "bad JSON",
                            },
                        },
                    )
                    continue
                rec.events.append(event)
                etype = event.get("type")
                if etype == "session.update":
                    session.update(event.get("session") or {})
                    await self._send(ws, {"type": "session.updated", "session": session})
                elif etype == "conversation.item.create":
                    parts = (event.get("item") or {}).get("content") or []
                    text = " ".join(p.get("text", "") for p in parts if isinstance(p, dict))
                    await self._send(
                        ws, {"type": "conversation.item.added", "item": event.get("item")}
                    )
                elif etype == "response.create":
                    await self._respond(ws, text, self._next(handshake=False))
        except Exception:  # the client went away
            return

    async def _respond(self, ws: ServerConnection, text: str, action: RtAction) -> None:
        rid = f"resp_{next(self._ids)}"
        if action.kind == "error":
            await self._send(
                ws, {"type": "error", "error": {**(action.detail or {}), "event_id": None}}
            )
            return
        await self._send(
            ws, {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}
        )
        words = text.split()
        pcm = tone_pcm(len(words))
        chunk = int(self.chunk_seconds * RATE) * 2
        chunks = [pcm[i : i + chunk] for i in range(0, len(pcm), chunk)]
        if action.kind == "drop":
            for c in chunks[:2]:
                await self._send(
                    ws,
                    {
                        "type": "response.output_audio.delta",
                        "response_id": rid,
                        "item_id": "item_1",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": base64.b64encode(c).decode(),
                    },
                )
            ws.transport.abort()
            return
        if action.kind == "failed":
            await self._send(
                ws,
                {
                    "type": "response.done",
                    "response": {
                        "id": rid,
                        "object": "realtime.response",
                        "status": "failed",
                        "status_details": {"type": "failed", "error": action.detail},
                    },
                },
            )
            return
        said = text
        if action.kind == "reword":
            said = (
                action.transcript
                if action.transcript is not None
                else "Well, " + text.replace(words[-1] if words else "", "indeed", 1)
            )
        for c in chunks:
            await self._send(
                ws,
                {
                    "type": "response.output_audio.delta",
                    "response_id": rid,
                    "item_id": "item_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": base64.b64encode(c).decode(),
                },
            )
        for w in said.split():
            await self._send(
                ws,
                {
                    "type": "response.output_audio_transcript.delta",
                    "response_id": rid,
                    "item_id": "item_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": w + " ",
                },
            )
        await self._send(
            ws,
            {
                "type": "response.output_audio.done",
                "response_id": rid,
                "item_id": "item_1",
                "output_index": 0,
                "content_index": 0,
            },
        )
        await self._send(
            ws,
            {
                "type": "response.output_audio_transcript.done",
                "response_id": rid,
                "item_id": "item_1",
                "output_index": 0,
                "content_index": 0,
                "transcript": said,
            },
        )
        audio_tokens = round(len(pcm) / 2 / RATE * 20)
        await self._send(
            ws,
            {
                "type": "response.done",
                "response": {
                    "id": rid,
                    "object": "realtime.response",
                    "status": "completed",
                    "usage": {
                        "total_tokens": audio_tokens + 40,
                        "input_tokens": 40,
                        "output_tokens": audio_tokens,
                        "output_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
                    },
                },
            },
        )
