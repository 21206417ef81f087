"""A fake OpenAI-compatible speech endpoint (``POST /v1/audio/speech``) on 127.0.0.1, the
request shape self-hosted and third-party engines keep. Answers a real WAV (a PCM16 tone, one
burst per word). ``fake.script(*actions)`` queues one-off answers: ``("ok",)``,
``("stream_wav",)`` (a WAV whose size fields say 0xFFFFFFFF, as streaming servers send),
``("status", code, retry_after)``, ``("garbage",)``."""

from __future__ import annotations

import json
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from foxpipe.providers.voice import pcm16_wav
from tests.fakes.realtime_server import tone_pcm


@dataclass
class SpeechRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


class FakeSpeech:
    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        self.requests: list[SpeechRequest] = []
        self.actions: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def script(self, *actions: tuple[Any, ...]) -> None:
        with self._lock:
            self.actions.extend(actions)

    def start(self) -> FakeSpeech:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeSpeech:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _reply(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _error(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        code: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps(
            {"error": {"message": f"fake {code}", "type": "error", "param": None, "code": code}}
        )
        self._reply(h, status, body.encode(), "application/json", headers)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        rec = SpeechRequest(h.path, {k.lower(): v for k, v in h.headers.items()}, body)
        with self._lock:
            self.requests.append(rec)
            action = self.actions.pop(0) if self.actions else ("ok",)
        if h.path != "/v1/audio/speech":
            return self._error(h, 404, "not_found")
        if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(h, 401, "invalid_api_key")
        if action[0] == "status":
            status, after = action[1], action[2] if len(action) > 2 else None
            headers = {"retry-after": str(after)} if after is not None else {}
            return self._error(
                h, status, "rate_limit_exceeded" if status == 429 else f"http_{status}", headers
            )
        if action[0] == "garbage":
            return self._reply(h, 200, b"this is not audio at all" * 10, "audio/wav")
        words = len(str(body.get("input", "")).split())
        wav = pcm16_wav(tone_pcm(words), 24000)
        if action[0] == "stream_wav":
            wav = bytearray(wav)
            struct.pack_into("<I", wav, 4, 0xFFFFFFFF)
            struct.pack_into("<I", wav, 40, 0xFFFFFFFF)
            wav = bytes(wav)
        return self._reply(h, 200, wav, "audio/wav")
