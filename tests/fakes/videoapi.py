"""Loopback fakes of Kling and MiniMax Hailuo image-to-video, with the wire shapes of the
real APIs, scriptable per test: each create pops the next behaviour from ``script``
("ok", "rate", "policy", "balance", "auth", "server", "hang"); a task succeeds after
``polls_to_finish`` status checks, or fails when ``task_outcome`` is "failed"."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt


class _Base:
    def __init__(self, clip: bytes):
        self.clip = clip
        self.script: list[str] = []
        self.polls_to_finish = 2
        self.task_outcome = "succeed"
        self.hang_seconds = 2.0
        self.requests: list[dict[str, Any]] = []
        self.polls: dict[str, int] = {}
        self.tasks: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> _Base:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def creates(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    def next_behaviour(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else "ok"

    def new_task(self) -> str:
        with self.lock:
            tid = f"task-{len(self.tasks) + 1}"
            self.tasks.append(tid)
            self.polls[tid] = 0
            return tid

    def poll(self, tid: str) -> str:
        with self.lock:
            if tid not in self.polls:
                return "unknown"
            self.polls[tid] += 1
            if self.polls[tid] < self.polls_to_finish:
                return "processing"
            return self.task_outcome

    def handle(self, req: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, list[str]],
               body: Any) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _do(self, method: str) -> None:
                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                fake.requests.append({"method": method, "path": parsed.path, "headers": dict(self.headers),
                                      "json": body, "time": time.time()})
                if parsed.path.startswith("/download/"):
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Content-Length", str(len(fake.clip)))
                    self.end_headers()
                    self.wfile.write(fake.clip)
                    return
                status, payload, headers = fake.handle(self, method, parsed.path, parse_qs(parsed.query), body)
                if status == 0:  # hang: answer after the client gave up
                    time.sleep(fake.hang_seconds)
                    status, payload, headers = 500, {"error": "late"}, {}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def do_GET(self) -> None:
                self._do("GET")

            def do_POST(self) -> None:
                self._do("POST")

        return Handler


class FakeKling(_Base):
    """``POST /v1/videos/image2video``, ``GET /v1/videos/image2video/{id}``; checks the JWT."""

    def __init__(self, clip: bytes, access_key: str, secret_key: str):
        super().__init__(clip)
        self.access_key = access_key
        self.secret_key = secret_key

    def _err(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        return status, {"code": code, "message": message, "request_id": "req"}, headers or {}

    def handle(self, req, method, path, query, body):
        auth = req.headers.get("Authorization", "")
        try:
            claims = jwt.decode(auth.removeprefix("Bearer "), self.secret_key, algorithms=["HS256"])
            if claims.get("iss") != self.access_key:
                raise jwt.InvalidTokenError("iss")
        except jwt.InvalidTokenError:
            return self._err(401, 1002, "Auth failed")
        if method == "POST" and path == "/v1/videos/image2video":
            b = self.next_behaviour()
            if b == "rate":
                return self._err(429, 1302, "API request too fast", {"Retry-After": "0"})
            if b == "policy":
                return self._err(400, 1301, "Failure to pass the risk control system")
            if b == "balance":
                return self._err(429, 1102, "Resource pack exhausted")
            if b == "auth":
                return self._err(401, 1000, "Auth failed")
            if b == "server":
                return self._err(500, 5000, "Server internal error")
            if b == "hang":
                return 0, None, {}
            if not isinstance(body, dict) or not body.get("image") or body.get("model_name") is None:
                return self._err(400, 1201, "bad params")
            tid = self.new_task()
            return 200, {"code": 0, "message": "SUCCEED", "request_id": "req",
                         "data": {"task_id": tid, "task_status": "submitted", "created_at": 1}}, {}
        if method == "GET" and path.startswith("/v1/videos/image2video/"):
            tid = path.rsplit("/", 1)[1]
            state = self.poll(tid)
            if state == "unknown":
                return self._err(404, 1203, "task not found")
            data: dict[str, Any] = {"task_id": tid, "task_status": state, "task_status_msg": ""}
            if state == "succeed":
                data["task_result"] = {"videos": [{"id": "v1", "url": f"{self.url}/download/{tid}.mp4",
                                                   "duration": "5"}]}
            if state == "failed":
                data["task_status_msg"] = "Generation failed"
            return 200, {"code": 0, "message": "SUCCEED", "request_id": "req", "data": data}, {}
        return self._err(404, 1203, "not found")


class FakeHailuo(_Base):
    """``POST /v1/video_generation``, ``GET /v1/query/video_generation``, ``GET /v1/files/retrieve``."""

    def __init__(self, clip: bytes, api_key: str):
        super().__init__(clip)
        self.api_key = api_key

    @staticmethod
    def _resp(code: int, msg: str, **extra: Any) -> dict[str, Any]:
        return {**extra, "base_resp": {"status_code": code, "status_msg": msg}}

    def handle(self, req, method, path, query, body):
        if req.headers.get("Authorization") != f"Bearer {self.api_key}":
            return 200, self._resp(1004, "authorization failed"), {}  # MiniMax answers 200 with a code
        if method == "POST" and path == "/v1/video_generation":
            b = self.next_behaviour()
            if b == "rate":
                return 200, self._resp(1002, "rate limit exceeded"), {}
            if b == "policy":
                return 200, self._resp(1026, "input new_sensitive"), {}
            if b == "balance":
                return 200, self._resp(1008, "insufficient balance"), {}
            if b == "auth":
                return 200, self._resp(1004, "authorization failed"), {}
            if b == "server":
                return 502, {"error": "bad gateway"}, {}
            if b == "hang":
                return 0, None, {}
            if not isinstance(body, dict) or not str(body.get("first_frame_image", "")).startswith(("http", "data:")):
                return 200, self._resp(2013, "invalid params"), {}
            return 200, self._resp(0, "success", task_id=self.new_task()), {}
        if method == "GET" and path == "/v1/query/video_generation":
            tid = (query.get("task_id") or [""])[0]
            state = self.poll(tid)
            if state == "unknown":
                return 200, self._resp(2013, "invalid task"), {}
            status = {"processing": "Processing", "succeed": "Success", "failed": "Fail"}[state]
            extra = {"file_id": f"file-{tid}"} if status == "Success" else {}
            return 200, self._resp(0, "success", task_id=tid, status=status, **extra), {}
        if method == "GET" and path == "/v1/files/retrieve":
            fid = (query.get("file_id") or [""])[0]
            tid = fid.removeprefix("file-")
            return 200, self._resp(0, "success", file={"file_id": fid, "bytes": len(self.clip), "filename": "clip.mp4",
                                                       "purpose": "video_generation",
                                                       "download_url": f"{self.url}/download/{tid}.mp4"}), {}
        return 404, self._resp(2013, "not found"), {}
