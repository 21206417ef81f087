"""A fake OpenAI API: a real HTTP server on 127.0.0.1 that the real ``openai`` SDK talks to.

It serves ``POST /v1/chat/completions`` (Structured Outputs: the answer is JSON built from the
request's ``json_schema``), ``POST /v1/images/generations`` (JSON) and ``POST /v1/images/edits``
(multipart, repeated ``image[]`` parts), returning real PNGs as ``b64_json``, with the wire shapes
and error bodies of the real API (``{"error": {"message", "type", "param", "code"}}``).

Python API
----------
::

    from tests.fakes.openai_server import Action, FakeOpenAI

    with FakeOpenAI(rate_limit=20, time_scale=60, latency=0.05) as fake:
        client = AsyncOpenAI(api_key="sk-test", base_url=fake.base_url)   # http://127.0.0.1:PORT/v1
        ...
        fake.requests          # list[Request]: every request received, in arrival order
        fake.rate_limited      # how many 429s the server-side rate limit sent

In pytest, the ``fake_openai`` fixture yields a started ``FakeOpenAI()`` and stops it afterwards
(``tests/conftest.py`` imports it, so every test can ask for it).

``FakeOpenAI(**options)``; every option is also a plain attribute that may be changed while the
server runs (``fake.latency = 0.2``):

- ``rate_limit: float | None = None`` — server-enforced sliding window: at most R admitted
  requests per (scaled) minute on ``rate_limit_paths``. A request over the limit gets
  ``429 rate_limit_exceeded`` with ``retry-after`` (whole seconds, rounded up) and
  ``retry-after-ms`` (exact) saying when the oldest admitted request leaves the window. Refused
  requests do not take a place in the window; each one adds 1 to ``fake.rate_limited``.
- ``time_scale: float = 1.0`` — how much faster than real time the rate window runs: the window
  lasts ``60 / time_scale`` real seconds (``time_scale=60``: "R per minute" becomes R per second).
  Only the window is scaled; ``latency`` and every other duration are real seconds, and every
  Retry-After the server sends is in real seconds.
- ``rate_limit_paths: tuple[str, ...] = ("/v1/images/generations", "/v1/images/edits")``.
- ``ratelimit_headers: bool = True`` — while ``rate_limit`` is set, answers on those paths carry
  ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests`` and
  ``x-ratelimit-reset-requests`` (OpenAI's duration format: ``"20ms"``, ``"1.5s"``, ``"1m30s"``).
- ``latency: float = 0.0``, ``latency_jitter: float = 0.0`` — seconds each image request takes
  (uniform in ``latency ± jitter``); ``chat_latency: float = 0.0`` for chat.
- ``failure_rate: float = 0.0``, ``failure_status: int = 500`` — that fraction of admitted
  requests (after the rate limit, before the latency) answer ``failure_status``
  (``seed`` makes it repeatable).
- ``blocked_words: set[str]`` — an image prompt containing any of them (case-insensitive) gets
  ``400 moderation_blocked`` (type ``image_generation_user_error``).
- ``list_length: int | None = None`` — chat answers put this many items in every array whose
  schema fixes its length (``minItems == maxItems``), e.g. 19 scenes instead of 20.
- ``api_key: str | None = None`` — when set, any other bearer token gets ``401 invalid_api_key``.
- ``image_px: int = 32`` — the returned PNG's long side in pixels (aspect follows ``size``), so
  tests stay fast.
- ``chat_reply: Callable[[dict], str | dict] | None`` — custom chat answer from the request body.
- ``seed: int = 0``.

Scripting (one-off behaviour for the next matching requests): ``fake.script(kind, *actions)``
queues actions for ``kind`` in ``"chat"``, ``"generations"``, ``"edits"``, ``"images"`` (either
image path) or ``"any"``. Each request takes the first queued action of its path, then of
``"images"``, then of ``"any"``; without one it is served normally. Actions (all take
``delay=seconds`` to wait before answering):

- ``Action.ok()`` — a normal answer (useful with ``delay``)
- ``Action.rate_limited(retry_after=1.0, retry_after_ms=None)`` — 429 ``rate_limit_exceeded``;
  pass ``None`` to leave out a header
- ``Action.quota()`` — 429 ``insufficient_quota``;  ``Action.unauthorized()`` — 401
  ``invalid_api_key``;  ``Action.forbidden()`` — 403;  ``Action.not_found()`` — 404
  ``model_not_found``
- ``Action.server_error(status=500)`` — 500/502/503
- ``Action.cut_off()`` — a 200 whose connection closes halfway through the body
- ``Action.hang(seconds=None)`` — holds the request (until ``seconds`` or the server stops), then
  closes the connection without an answer: the client's timeout must fire
- ``Action.moderation()`` — 400 ``moderation_blocked``;  ``Action.content_policy()`` — 400
  ``content_policy_violation``;  ``Action.bad_request(message)`` — 400 ``invalid_request_error``
- chat only: ``Action.scenes(n)`` (n items in fixed-length arrays), ``Action.refusal(text)``,
  ``Action.truncated()`` (``finish_reason="length"``), ``Action.content(text)`` (raw message
  content, e.g. invalid JSON), ``Action.verdict(on_model, score, defects, note)`` (a continuity
  verdict as the answer)

Vision requests (chat whose user message is a list of ``text`` and ``image_url`` parts) are
served like any chat (unscripted, a continuity check answers an on-model verdict, score 95);
their record also holds ``image_urls`` (the parts' URLs, in order),
``n_images``, ``image_digests`` (sha256 of each data URL's decoded bytes), ``text`` (the text
parts joined) and ``schema`` (the request's ``response_format.json_schema``).

Records: ``fake.requests`` holds a ``Request`` per request with ``path``, ``kind`` ("chat",
``"generations"``, ``"edits"``), ``model``, ``prompt`` (image prompt, or the chat's last user
message), ``size``, ``quality``, ``moderation``, ``n_images`` (``image[]`` parts of an edit),
``image_digests`` (their sha256),
``t`` (``time.monotonic()`` on arrival), ``wall`` (``time.time()``), ``t_end``, ``status`` (the
status sent; ``0`` if the request hung or is still running), ``reason`` (``"ok"``,
``"rate_limit"``, ``"scripted:<name>"``, ``"failure_rate"``, ``"blocked"``, ``"auth"``),
``fields`` (JSON body or form fields) and ``messages`` (chat). Helpers: ``fake.of(kind)``,
``fake.statuses(kind)``, ``fake.prompts(kind)``, ``fake.reset()`` (clears records, scripts, the
window and the counters), ``fake.admitted`` (requests let through the window).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import math
import random
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

IMAGE_PATHS = ("/v1/images/generations", "/v1/images/edits")
KIND_OF_PATH = {
    "/v1/chat/completions": "chat",
    "/v1/images/generations": "generations",
    "/v1/images/edits": "edits",
}


# ---------------------------------------------------------------------------- actions


@dataclass
class Action:
    name: str = "ok"
    status: int = 200
    code: str | None = None
    err_type: str = "invalid_request_error"
    message: str = ""
    retry_after: float | None = None
    retry_after_ms: float | None = None
    delay: float = 0.0
    hang_for: float | None = None  # seconds to hold; math.inf = until the server stops
    list_length: int | None = None
    refusal_text: str | None = None
    finish_reason: str = "stop"
    raw_content: str | None = None
    cut: bool = False  # answer 200, send half the body, then close the connection
    gate: threading.Event | None = None  # answer once the test sets it (or the server stops)

    @classmethod
    def held(cls, gate: threading.Event) -> Action:
        """An ordinary answer, held until the test sets ``gate``: the test decides how long the
        work takes, not the machine's speed."""
        return cls("held", gate=gate)

    @classmethod
    def cut_off(cls) -> Action:
        """The connection drops mid-response: headers and half of a 200 body, then closed."""
        return cls("cut_off", 200, cut=True)

    @classmethod
    def ok(cls, delay: float = 0.0) -> Action:
        return cls("ok", delay=delay)

    @classmethod
    def rate_limited(
        cls,
        retry_after: float | None = 1.0,
        retry_after_ms: float | None = None,
        delay: float = 0.0,
    ) -> Action:
        return cls(
            "rate_limited",
            429,
            "rate_limit_exceeded",
            "requests",
            "Rate limit reached for images per minute. Please try again later.",
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            delay=delay,
        )

    @classmethod
    def quota(cls, delay: float = 0.0) -> Action:
        return cls(
            "quota",
            429,
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
            delay=delay,
        )

    @classmethod
    def unauthorized(cls, delay: float = 0.0) -> Action:
        return cls(
            "unauthorized",
            401,
            "invalid_api_key",
            "invalid_request_error",
            "Incorrect API key provided.",
            delay=delay,
        )

    @classmethod
    def forbidden(cls, delay: float = 0.0) -> Action:
        return cls(
            "forbidden",
            403,
            None,
            "invalid_request_error",
            "Your organization must be verified to use this model.",
            delay=delay,
        )

    @classmethod
    def not_found(cls, delay: float = 0.0) -> Action:
        return cls(
            "not_found",
            404,
            "model_not_found",
            "invalid_request_error",
            "The model does not exist or you do not have access to it.",
            delay=delay,
        )

    @classmethod
    def server_error(cls, status: int = 500, delay: float = 0.0) -> Action:
        return cls(
            "server_error",
            status,
            None,
            "server_error",
            "The server had an error while processing your request.",
            delay=delay,
        )

    @classmethod
    def hang(cls, seconds: float | None = None) -> Action:
        return cls("hang", 0, hang_for=math.inf if seconds is None else seconds)

    @classmethod
    def moderation(cls, delay: float = 0.0) -> Action:
        return cls(
            "moderation",
            400,
            "moderation_blocked",
            "image_generation_user_error",
            "Your request was rejected by the safety system.",
            delay=delay,
        )

    @classmethod
    def content_policy(cls, delay: float = 0.0) -> Action:
        return cls(
            "content_policy",
            400,
            "content_policy_violation",
            "invalid_request_error",
            "Your request was rejected as a result of our safety system.",
            delay=delay,
        )

    @classmethod
    def bad_request(cls, message: str = "Invalid value for 'size'.", delay: float = 0.0) -> Action:
        return cls(
            "bad_request", 400, "invalid_value", "invalid_request_error", message, delay=delay
        )

    @classmethod
    def scenes(cls, n: int, delay: float = 0.0) -> Action:
        return cls("scenes", list_length=n, delay=delay)

    @classmethod
    def refusal(
        cls, text: str = "I'm sorry, I can't help with that.", delay: float = 0.0
    ) -> Action:
        return cls("refusal", refusal_text=text, delay=delay)

    @classmethod
    def truncated(cls, delay: float = 0.0) -> Action:
        return cls("truncated", finish_reason="length", delay=delay)

    @classmethod
    def content(cls, text: str, delay: float = 0.0) -> Action:
        return cls("content", raw_content=text, delay=delay)

    @classmethod
    def verdict(
        cls,
        on_model: bool = True,
        score: int = 95,
        defects: list[str] | None = None,
        note: str = "Same hero.",
        delay: float = 0.0,
    ) -> Action:
        """A continuity verdict as the chat answer (the vision check's Structured Output)."""
        body = {"on_model": on_model, "score": score, "defects": list(defects or []), "note": note}
        return cls("verdict", raw_content=json.dumps(body), delay=delay)


@dataclass
class Request:
    path: str
    kind: str
    t: float
    wall: float
    model: str = ""
    prompt: str = ""
    size: str = ""
    quality: str = ""
    moderation: str = ""
    n_images: int = 0
    image_digests: list[str] = field(default_factory=list)  # sha256 of each image[] part
    status: int = 0
    reason: str = ""
    t_end: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    image_urls: list[str] = field(default_factory=list)  # chat: the image_url parts' URLs, in order
    text: str = ""  # chat: the text parts of the last user message, joined
    schema: dict[str, Any] = field(default_factory=dict)  # chat: response_format's json_schema


# ---------------------------------------------------------------------------- helpers


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real (tiny) PNG: solid colour with a darker stripe, readable by any decoder."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    dark = bytes(c // 2 for c in rgb)
    rows = []
    for y in range(height):
        px = dark if height // 3 <= y < height // 2 else bytes(rgb)
        rows.append(b"\x00" + px * width)
    raw = b"".join(rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def data_url_bytes(url: str) -> bytes:
    """The bytes of a base64 data URL (b"" for anything else)."""
    if not url.startswith("data:") or ";base64," not in url:
        return b""
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=False)
    except ValueError:
        return b""


def openai_duration(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* format: "20ms", "1.5s", "1m30s", "1m0s" (millisecond
    resolution, never an exponent: 60.00000000000006 s is "1m0s", not "1m5.68e-14s")."""
    ms = max(0, round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    m, rest = divmod(ms, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") or "0"
    return f"{m}m{secs}s" if m else f"{secs}s"


def _fake_string(key: str, index: int, schema: dict[str, Any]) -> str:
    if key == "title":
        text = "The Glowing Fox of the Deep Woods"
    else:
        label = key.replace("_", " ") or "item"
        text = f"{label.capitalize()} {index}: a clear picture of the hero in the forest at golden hour."
    max_len = schema.get("maxLength")
    return text[:max_len] if isinstance(max_len, int) else text


def value_from_schema(
    schema: dict[str, Any],
    defs: dict[str, Any],
    key: str = "",
    index: int = 1,
    list_length: int | None = None,
) -> Any:
    """A value that fits a JSON schema (the subset Structured Outputs uses)."""
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return value_from_schema(defs[name], defs, key, index, list_length)
    for combo in ("anyOf", "oneOf", "allOf"):
        if combo in schema:
            options = [s for s in schema[combo] if s.get("type") != "null"] or schema[combo]
            return value_from_schema(options[0], defs, key, index, list_length)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    typ = schema.get("type", "object")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "string")
    if typ == "object":
        props = schema.get("properties", {})
        return {k: value_from_schema(v, defs, k, index, list_length) for k, v in props.items()}
    if typ == "array":
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        n = lo if lo is not None else 3
        if list_length is not None and lo is not None and lo == hi:
            n = list_length
        item = schema.get("items", {"type": "string"})
        return [
            value_from_schema(item, defs, key.rstrip("s"), i, list_length) for i in range(1, n + 1)
        ]
    if typ == "integer":
        if key in ("number", "index", "scene"):
            return index
        return int(schema.get("minimum", 1))
    if typ == "number":
        return float(schema.get("minimum", 1.0))
    if typ == "boolean":
        return True
    return _fake_string(key, index, schema)


def parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    """(text fields, [(field name, file bytes)]) of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    files: list[tuple[str, bytes]] = []
    if not msg.is_multipart():
        return fields, files
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition") or ""
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files.append((name, payload))
        else:
            fields[name] = payload.decode("utf-8", "replace")
    return fields, files


# ---------------------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, as from a real server
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet

    def do_GET(self) -> None:  # noqa: N802
        self._send(
            404,
            {
                "error": {
                    "message": "Not found",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "unknown_url",
                }
            },
        )

    def do_POST(self) -> None:  # noqa: N802
        self.server.fake._handle(self)

    def _send_cut(self) -> None:
        body = json.dumps({"created": 0, "data": [{"b64_json": "A" * 4000}]}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-request-id", f"req_{random.getrandbits(48):012x}")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (timeout) and closed the socket
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a burst of concurrent connections is accepted, not dropped
    fake: FakeOpenAI


class FakeOpenAI:
    def __init__(
        self,
        *,
        rate_limit: float | None = None,
        time_scale: float = 1.0,
        rate_limit_paths: tuple[str, ...] = IMAGE_PATHS,
        ratelimit_headers: bool = True,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        chat_latency: float = 0.0,
        failure_rate: float = 0.0,
        failure_status: int = 500,
        blocked_words: set[str] | None = None,
        list_length: int | None = None,
        api_key: str | None = None,
        image_px: int = 32,
        chat_reply: Callable[[dict[str, Any]], str | dict[str, Any]] | None = None,
        seed: int = 0,
    ):
        self.rate_limit = rate_limit
        self.time_scale = time_scale
        self.rate_limit_paths = rate_limit_paths
        self.ratelimit_headers = ratelimit_headers
        self.latency = latency
        self.latency_jitter = latency_jitter
        self.chat_latency = chat_latency
        self.failure_rate = failure_rate
        self.failure_status = failure_status
        self.blocked_words = set(blocked_words or ())
        self.list_length = list_length
        self.api_key = api_key
        self.image_px = image_px
        self.chat_reply = chat_reply
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._window: deque[float] = deque()
        self._scripts: dict[str, deque[Action]] = {}
        self.requests: list[Request] = []
        self.rate_limited = 0
        self.admitted = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> FakeOpenAI:
        self._stop.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # releases hanging requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting and records
    def script(self, kind: str, *actions: Action) -> None:
        if kind not in ("chat", "generations", "edits", "images", "any"):
            raise ValueError(f"unknown kind {kind!r}")
        with self._lock:
            self._scripts.setdefault(kind, deque()).extend(actions)

    def pending(self, kind: str) -> int:
        with self._lock:
            return len(self._scripts.get(kind, ()))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._scripts.clear()
            self._window.clear()
            self.rate_limited = 0
            self.admitted = 0

    def of(self, kind: str | None = None) -> list[Request]:
        """Requests of a kind ("chat", "generations", "edits", "images"), in arrival order."""
        with self._lock:
            reqs = list(self.requests)
        if kind is None:
            return reqs
        if kind == "images":
            return [r for r in reqs if r.kind in ("generations", "edits")]
        return [r for r in reqs if r.kind == kind]

    def statuses(self, kind: str | None = None) -> list[int]:
        return [r.status for r in self.of(kind)]

    def prompts(self, kind: str | None = "images") -> list[str]:
        return [r.prompt for r in self.of(kind)]

    # -- request handling
    def _next_action(self, kind: str) -> Action | None:
        with self._lock:
            for key in (kind, "images" if kind in ("generations", "edits") else "", "any"):
                q = self._scripts.get(key)
                if q:
                    return q.popleft()
        return None

    def _admit(self, now: float) -> tuple[bool, float, int]:
        """Sliding window: (admitted, seconds until a place frees up, places left)."""
        assert self.rate_limit is not None
        period = 60.0 / max(self.time_scale, 1e-9)
        capacity = max(1, math.floor(self.rate_limit))
        with self._lock:
            while self._window and self._window[0] <= now - period:
                self._window.popleft()
            if len(self._window) < capacity:
                self._window.append(now)
                self.admitted += 1
                # period - (now - oldest), not oldest + period - now: the latter rounds to a
                # hair over the period when oldest + period crosses a power of two.
                reset = period - (now - self._window[0])
                return True, reset, capacity - len(self._window)
            self.rate_limited += 1
            return False, period - (now - self._window[0]), 0

    def _error(
        self, h: _Handler, rec: Request, action: Action, headers: dict[str, str] | None = None
    ) -> None:
        payload = {
            "error": {
                "message": action.message,
                "type": action.err_type,
                "param": None,
                "code": action.code,
            }
        }
        hdrs = dict(headers or {})
        if action.retry_after is not None:
            hdrs["retry-after"] = str(max(0, math.ceil(action.retry_after)))
            if action.retry_after_ms is None:
                hdrs["retry-after-ms"] = str(round(action.retry_after * 1000))
        if action.retry_after_ms is not None:
            hdrs["retry-after-ms"] = str(round(action.retry_after_ms))
        if action.status == 429 or action.status >= 500:
            hdrs.setdefault("x-should-retry", "true")
        self._finish(rec, action.status)  # recorded before the client can see the answer
        h._send(action.status, payload, hdrs)

    def _finish(self, rec: Request, status: int) -> None:
        with self._lock:
            rec.status = status
            rec.t_end = time.monotonic()

    def _handle(self, h: _Handler) -> None:
        now = time.monotonic()
        path = h.path.split("?", 1)[0]
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        kind = KIND_OF_PATH.get(path)
        rec = Request(
            path=path,
            kind=kind or "unknown",
            t=now,
            wall=time.time(),
            headers={k.lower(): v for k, v in h.headers.items() if k.lower() != "authorization"},
        )
        with self._lock:
            self.requests.append(rec)
        if kind is None:
            self._error(
                h, rec, Action("unknown", 404, "unknown_url", message=f"Unknown path {path}")
            )
            return
        # Parse the body.
        files: list[tuple[str, bytes]] = []
        if kind == "edits":
            fields, files = parse_multipart(h.headers.get("Content-Type", ""), body)
            rec.fields = dict(fields)
            images = [data for name, data in files if name in ("image", "image[]")]
            rec.n_images = len(images)
            rec.image_digests = [hashlib.sha256(d).hexdigest() for d in images]
        else:
            try:
                rec.fields = json.loads(body or b"{}")
            except ValueError:
                self._error(
                    h,
                    rec,
                    Action("bad_json", 400, None, message="We could not parse the JSON body."),
                )
                return
        f = rec.fields
        rec.model = str(f.get("model", ""))
        rec.size = str(f.get("size", ""))
        rec.quality = str(f.get("quality", ""))
        rec.moderation = str(f.get("moderation", ""))
        if kind == "chat":
            rec.messages = list(f.get("messages") or [])
            users = [m for m in rec.messages if m.get("role") == "user"]
            content = users[-1].get("content", "") if users else ""
            rec.prompt = content if isinstance(content, str) else json.dumps(content)
            if isinstance(content, list):  # vision: text and image_url parts
                rec.text = "\n".join(
                    str(p.get("text", ""))
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "text"
                )
                rec.image_urls = [
                    str((p.get("image_url") or {}).get("url", ""))
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "image_url"
                ]
                rec.n_images = len(rec.image_urls)
                rec.image_digests = [
                    hashlib.sha256(data_url_bytes(u)).hexdigest() for u in rec.image_urls
                ]
            fmt = f.get("response_format")
            if isinstance(fmt, dict) and isinstance(fmt.get("json_schema"), dict):
                rec.schema = fmt["json_schema"]
        else:
            rec.prompt = str(f.get("prompt", ""))
        # Authentication.
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or (
            self.api_key is not None and auth[7:] != self.api_key
        ):
            rec.reason = "auth"
            self._error(h, rec, Action.unauthorized())
            return
        # Server-side rate limit.
        rate_headers: dict[str, str] = {}
        if self.rate_limit is not None and path in self.rate_limit_paths:
            ok, reset, left = self._admit(now)
            if not ok:
                rec.reason = "rate_limit"
                self._error(
                    h, rec, Action.rate_limited(retry_after=reset, retry_after_ms=reset * 1000)
                )
                return
            if self.ratelimit_headers:
                rate_headers = {
                    "x-ratelimit-limit-requests": str(max(1, math.floor(self.rate_limit))),
                    "x-ratelimit-remaining-requests": str(left),
                    "x-ratelimit-reset-requests": openai_duration(reset),
                }
        action = self._next_action(kind)
        if action is not None:
            rec.reason = f"scripted:{action.name}"
            if action.delay:
                self._stop.wait(action.delay)
            while action.gate is not None and not action.gate.wait(0.05):
                if self._stop.is_set():
                    break
            if action.hang_for is not None:
                self._stop.wait(None if math.isinf(action.hang_for) else action.hang_for)
                h.close_connection = True
                self._finish(rec, 0)
                return
            if action.status >= 400:
                self._error(h, rec, action, rate_headers)
                return
            if action.cut:
                self._finish(rec, 0)
                h._send_cut()
                return
        if self.failure_rate and self._rng.random() < self.failure_rate:
            rec.reason = "failure_rate"
            self._error(h, rec, Action.server_error(self.failure_status), rate_headers)
            return
        if kind == "chat":
            if self.chat_latency:
                self._stop.wait(self.chat_latency)
            self._chat(h, rec, action)
            return
        lowered = rec.prompt.lower()
        if any(w.lower() in lowered for w in self.blocked_words):
            rec.reason = "blocked"
            self._error(h, rec, Action.moderation(), rate_headers)
            return
        delay = self.latency + (
            self._rng.uniform(-1, 1) * self.latency_jitter if self.latency_jitter else 0.0
        )
        if delay > 0:
            self._stop.wait(delay)
        rec.reason = rec.reason or "ok"
        self._image(h, rec, rate_headers, len(files))

    def _chat(self, h: _Handler, rec: Request, action: Action | None) -> None:
        f = rec.fields
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if action is not None and action.refusal_text is not None:
            message["refusal"] = action.refusal_text
        elif action is not None and action.raw_content is not None:
            message["content"] = action.raw_content
        else:
            if self.chat_reply is not None:
                reply = self.chat_reply(f)
                content = reply if isinstance(reply, str) else json.dumps(reply)
            else:
                fmt = f.get("response_format") or {}
                schema = (
                    (fmt.get("json_schema") or {}).get("schema") if isinstance(fmt, dict) else None
                )
                n = (
                    action.list_length
                    if action is not None and action.list_length is not None
                    else self.list_length
                )
                if schema and rec.image_urls and "on_model" in (schema.get("properties") or {}):
                    # An unscripted continuity check: the same hero.
                    content = json.dumps(
                        {"on_model": True, "score": 95, "defects": [], "note": "Same hero."}
                    )
                elif schema:
                    value = value_from_schema(schema, schema.get("$defs", {}), list_length=n)
                    content = json.dumps(value)
                else:
                    content = "A fake answer."
            message["content"] = content
            if action is not None and action.finish_reason != "stop":
                finish = action.finish_reason
                message["content"] = content[: max(1, len(content) // 2)]
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in rec.messages) // 4
        completion_tokens = len(message["content"] or message["refusal"] or "") // 4
        payload = {
            "id": f"chatcmpl-{random.getrandbits(48):012x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": rec.model,
            "choices": [
                {"index": 0, "finish_reason": finish, "message": message, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        rec.reason = rec.reason or "ok"
        self._finish(rec, 200)  # recorded before the client can see the answer
        h._send(200, payload)

    def _image(self, h: _Handler, rec: Request, headers: dict[str, str], n_refs: int) -> None:
        try:
            w, hgt = (int(x) for x in (rec.size or "1024x1024").lower().split("x"))
        except ValueError:
            w, hgt = 1024, 1024
        scale = self.image_px / max(w, hgt)
        pw, ph = max(1, round(w * scale)), max(1, round(hgt * scale))
        with self._lock:
            n = len(self.requests)
        hue = (n * 47) % 256
        rgb = (hue, 255 - hue, 128 if rec.kind == "edits" else 64)
        data = png_bytes(pw, ph, rgb)
        text_tokens = max(1, len(rec.prompt) // 4)
        image_tokens = 323 * n_refs
        payload = {
            "created": int(time.time()),
            "data": [{"b64_json": base64.b64encode(data).decode()}],
            "output_format": "png",
            "size": rec.size or "1024x1024",
            "quality": rec.quality or "medium",
            "background": "opaque",
            "usage": {
                "input_tokens": text_tokens + image_tokens,
                "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
                "output_tokens": 1056,
                "total_tokens": text_tokens + image_tokens + 1056,
            },
        }
        self._finish(rec, 200)  # recorded before the client can see the answer
        h._send(200, payload, headers)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started FakeOpenAI, stopped after the test."""
    fake = FakeOpenAI().start()
    try:
        yield fake
    finally:
        fake.stop()
