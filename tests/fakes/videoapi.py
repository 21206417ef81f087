"""Loopback fakes of Kling and MiniMax Hailuo image-to-video, with the wire shapes of the
real APIs, scriptable per test: each create pops the next behaviour from ``script``
("ok", "rate", "policy", "balance", "auth", "server", "hang"); a task succeeds after
``polls_to_finish`` status checks, or fails when ``task_outcome`` is "failed".

Also: ``hold()``/``release()`` keep every task running until released (a task that
finishes while the app is down); ``hold_downloads()``/``release_downloads()`` keep every
download waiting (up to 30 s) until released (a clip caught while it is being fetched);
``finish_after`` finishes tasks by wall-clock age instead of poll count; download links
carry a token that expires ``link_ttl`` seconds after it was issued or after its first use
(``single_use_links``), answering 403 like a signed CDN link;
a fresh token is issued on every status query (Kling, MiniMax v2) or files/retrieve (v1).
``submissions`` counts accepted tasks; reference images are validated and recorded.
Kling's ``multi-image2video`` and MiniMax's v2 ``content[]`` shapes are checked like the
real APIs (malformed lists, frame and reference mixed, too many images are refused)."""

from __future__ import annotations

import json
import secrets
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
        self.created: dict[str, float] = {}
        self.finish_after: float | None = None  # seconds after creation; None: by poll count
        self.held = threading.Event()  # set: tasks stay running
        self.downloads_open = threading.Event()  # clear: downloads wait until it is set
        self.downloads_open.set()
        self.downloads_waiting = 0  # downloads waiting for release_downloads() now
        self.link_ttl: float | None = None  # seconds a download link stays valid
        self.single_use_links = False
        self.links: dict[str, tuple[str, float, bool]] = {}  # token -> (task, issued, used)
        self.downloads: list[tuple[str, int]] = []  # (task, HTTP status)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

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

    @property
    def submissions(self) -> int:
        """Tasks accepted (each one would be paid)."""
        with self.lock:
            return len(self.tasks)

    def hold(self) -> None:
        self.held.set()

    def release(self) -> None:
        self.held.clear()

    def hold_downloads(self) -> None:
        self.downloads_open.clear()

    def release_downloads(self) -> None:
        self.downloads_open.set()

    def link(self, tid: str) -> str:
        """A fresh download link of a task."""
        token = secrets.token_urlsafe(8)
        with self.lock:
            self.links[token] = (tid, time.time(), False)
        return f"{self.url}/download/{tid}.mp4?t={token}"

    def _serve_download(self, path: str, query: dict[str, list[str]]) -> int:
        tid = path.removeprefix("/download/").removesuffix(".mp4")
        token = (query.get("t") or [""])[0]
        with self.lock:
            link = self.links.get(token)
            status = 200
            if link is None or link[0] != tid:
                status = 404
            else:
                expired = self.link_ttl is not None and time.time() - link[1] > self.link_ttl
                if expired or (self.single_use_links and link[2]):
                    status = 403
            if status == 200:
                self.links[token] = (link[0], link[1], True)
            self.downloads.append((tid, status))
        return status

    def next_behaviour(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else "ok"

    def new_task(self) -> str:
        with self.lock:
            tid = f"task-{len(self.tasks) + 1}"
            self.tasks.append(tid)
            self.polls[tid] = 0
            self.created[tid] = time.time()
            return tid

    def poll(self, tid: str) -> str:
        with self.lock:
            if tid not in self.polls:
                return "unknown"
            self.polls[tid] += 1
            if self.held.is_set():
                return "processing"
            if self.finish_after is not None:
                done = time.time() - self.created[tid] >= self.finish_after
            else:
                done = self.polls[tid] >= self.polls_to_finish
            return self.task_outcome if done else "processing"

    def handle(
        self,
        req: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
    ) -> tuple[int, Any, dict[str, str]]:
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
                fake.requests.append(
                    {
                        "method": method,
                        "path": parsed.path,
                        "headers": dict(self.headers),
                        "json": body,
                        "time": time.time(),
                    }
                )
                if parsed.path.startswith("/download/"):
                    if not fake.downloads_open.is_set():
                        with fake.lock:
                            fake.downloads_waiting += 1
                        fake.downloads_open.wait(30)
                        with fake.lock:
                            fake.downloads_waiting -= 1
                    code = fake._serve_download(parsed.path, parse_qs(parsed.query))
                    if code != 200:
                        self.send_response(code)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Content-Length", str(len(fake.clip)))
                    self.end_headers()
                    self.wfile.write(fake.clip)
                    return
                status, payload, headers = fake.handle(
                    self, method, parsed.path, parse_qs(parsed.query), body
                )
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
        self.routes: dict[str, str] = {}  # task -> the endpoint that made it
        self.reference_models = {"kling-v3-omni", "kling-video-o1"}
        self.max_images = 4

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
        if method == "POST" and path in ("/v1/videos/image2video", "/v1/videos/multi-image2video"):
            b = self.next_behaviour()
            if b == "rate":
                return self._err(429, 1302, "API request too fast", {"Retry-After": "0"})
            if b == "policy":
                return self._err(400, 1301, "Failure to pass the risk control system")
            if b == "balance":
                return self._err(429, 1102, "Resource pack exhausted")
            if b == "arrears":
                return self._err(429, 1101, "Account in arrears")
            if b == "concurrency":
                return self._err(429, 1303, "Parallel task over resource pack limit")
            if b == "auth":
                return self._err(401, 1000, "Auth failed")
            if b == "server":
                return self._err(500, 5000, "Server internal error")
            if b == "hang":
                return 0, None, {}
            if not isinstance(body, dict) or not body.get("model_name"):
                return self._err(400, 1201, "bad params")
            route = path.rsplit("/", 1)[1]
            if route == "multi-image2video":
                problem = self._check_image_list(body)
                if problem:
                    return self._err(400, 1201, problem)
            elif not body.get("image") or "image_list" in body:
                return self._err(400, 1201, "image2video takes one image")
            tid = self.new_task()
            with self.lock:
                self.routes[tid] = route
            return (
                200,
                {
                    "code": 0,
                    "message": "SUCCEED",
                    "request_id": "req",
                    "data": {"task_id": tid, "task_status": "submitted", "created_at": 1},
                },
                {},
            )
        if method == "GET" and path.startswith("/v1/videos/"):
            route, _, tid = path.removeprefix("/v1/videos/").partition("/")
            if self.routes.get(tid) != route:
                return self._err(404, 1203, "task not found")
            state = self.poll(tid)
            if state == "unknown":
                return self._err(404, 1203, "task not found")
            data: dict[str, Any] = {"task_id": tid, "task_status": state, "task_status_msg": ""}
            if state == "succeed":
                data["task_result"] = {
                    "videos": [{"id": "v1", "url": self.link(tid), "duration": "5"}]
                }
            if state == "failed":
                data["task_status_msg"] = "Generation failed"
            return 200, {"code": 0, "message": "SUCCEED", "request_id": "req", "data": data}, {}
        return self._err(404, 1203, "not found")

    def _check_image_list(self, body: dict[str, Any]) -> str:
        if body.get("model_name") not in self.reference_models:
            return f"model {body.get('model_name')} does not support multi-image2video"
        images = body.get("image_list")
        if not isinstance(images, list) or not images:
            return "image_list must be a non-empty list"
        if len(images) > self.max_images:
            return f"image_list takes at most {self.max_images} images"
        for item in images:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("image"), str)
                or not item["image"]
            ):
                return "each image_list item needs an image"
            if item["image"].startswith("data:"):
                return "base64 images go without the data: prefix"
        if "image" in body:
            return "multi-image2video takes image_list, not image"
        return ""


class FakeHailuo(_Base):
    """``POST /v1/video_generation``, ``GET /v1/query/video_generation``, ``GET /v1/files/retrieve``."""

    def __init__(self, clip: bytes, api_key: str):
        super().__init__(clip)
        self.api_key = api_key
        self.v2_tasks: set[str] = set()
        self.retrieves = 0

    @staticmethod
    def _resp(code: int, msg: str, **extra: Any) -> dict[str, Any]:
        return {**extra, "base_resp": {"status_code": code, "status_msg": msg}}

    def handle(self, req, method, path, query, body):
        if req.headers.get("Authorization") != f"Bearer {self.api_key}":
            return (
                200,
                self._resp(1004, "authorization failed"),
                {},
            )  # MiniMax answers 200 with a code
        if method == "POST" and path in ("/v1/video_generation", "/v2/video_generation"):
            b = self.next_behaviour()
            if b == "rate":
                return 200, self._resp(1002, "rate limit exceeded"), {}
            if b == "policy":
                return 200, self._resp(1026, "input new_sensitive"), {}
            if b == "output_policy":
                return 200, self._resp(1027, "output new_sensitive"), {}
            if b == "balance":
                return 200, self._resp(1008, "insufficient balance"), {}
            if b == "auth":
                return 200, self._resp(1004, "authorization failed"), {}
            if b == "bad_key":
                return 200, self._resp(2049, "invalid api key"), {}
            if b == "server":
                return 502, {"error": "bad gateway"}, {}
            if b == "hang":
                return 0, None, {}
            if path.startswith("/v2/"):
                problem = self.check_v2(body)
                if problem:
                    return 200, self._resp(2013, f"invalid params: {problem}"), {}
                tid = self.new_task()
                with self.lock:
                    self.v2_tasks.add(tid)
                return 200, self._resp(0, "success", task_id=tid), {}
            if not isinstance(body, dict) or not str(body.get("first_frame_image", "")).startswith(
                ("http", "data:")
            ):
                return 200, self._resp(2013, "invalid params"), {}
            if "minimax-h3" in str(body.get("model", "")).lower():
                return (
                    200,
                    self._resp(
                        2013, "invalid params: MiniMax-H3 is served by /v2/video_generation"
                    ),
                    {},
                )
            return 200, self._resp(0, "success", task_id=self.new_task()), {}
        if method == "GET" and path.startswith("/v2/query/video_generation/"):
            tid = path.rsplit("/", 1)[1]
            if tid not in self.v2_tasks:
                return 200, self._resp(2013, "invalid task"), {}
            state = self.poll(tid)
            status = {"processing": "running", "succeed": "succeeded", "failed": "failed"}[state]
            task: dict[str, Any] = {"id": tid, "status": status}
            if status == "succeeded":
                task["content"] = {"url": self.link(tid)}
            if status == "failed":
                task["error"] = "generation failed"
            return 200, self._resp(0, "success", task=task), {}
        if method == "GET" and path == "/v1/query/video_generation":
            tid = (query.get("task_id") or [""])[0]
            state = self.poll(tid) if tid not in self.v2_tasks else "unknown"
            if state == "unknown":
                return 200, self._resp(2013, "invalid task"), {}
            status = {"processing": "Processing", "succeed": "Success", "failed": "Fail"}[state]
            extra = {"file_id": f"file-{tid}"} if status == "Success" else {}
            return 200, self._resp(0, "success", task_id=tid, status=status, **extra), {}
        if method == "GET" and path == "/v1/files/retrieve":
            fid = (query.get("file_id") or [""])[0]
            tid = fid.removeprefix("file-")
            with self.lock:
                self.retrieves += 1
            return (
                200,
                self._resp(
                    0,
                    "success",
                    file={
                        "file_id": fid,
                        "bytes": len(self.clip),
                        "filename": "clip.mp4",
                        "purpose": "video_generation",
                        "download_url": self.link(tid),
                    },
                ),
                {},
            )
        return 404, self._resp(2013, "not found"), {}

    @staticmethod
    def check_v2(body: Any) -> str:
        """Why MiniMax would refuse this v2 request, or ''."""
        if not isinstance(body, dict) or body.get("model") != "MiniMax-H3":
            return "model must be MiniMax-H3"
        content = body.get("content")
        if not isinstance(content, list) or not content:
            return "content must be a non-empty list"
        texts = [c for c in content if isinstance(c, dict) and c.get("type") == "text"]
        if len(texts) != 1 or not str(texts[0].get("text", "")).strip():
            return "content needs exactly one non-empty text item"
        roles: list[str] = []
        for c in content:
            if not isinstance(c, dict) or c.get("type") not in (
                "text",
                "image_url",
                "video_url",
                "audio_url",
            ):
                return "unknown content item"
            if c["type"] == "image_url":
                url = (
                    (c.get("image_url") or {}).get("url", "")
                    if isinstance(c.get("image_url"), dict)
                    else ""
                )
                if not str(url).startswith(("http", "data:image/")):
                    return "image_url.url must be a URL or an image data URI"
                if c.get("role") not in ("first_frame", "last_frame", "reference_image"):
                    return "image role must be first_frame, last_frame or reference_image"
                roles.append(c["role"])
        frames = [r for r in roles if r in ("first_frame", "last_frame")]
        refs = roles.count("reference_image")
        if frames and refs:
            return "first/last frame and reference images are exclusive"
        if roles.count("first_frame") > 1 or roles.count("last_frame") > 1:
            return "one first frame and one last frame at most"
        if "last_frame" in roles and "first_frame" not in roles:
            return "last_frame needs first_frame"
        if refs > 9:
            return "at most 9 reference images"
        if not isinstance(body.get("duration"), int) or not 4 <= body["duration"] <= 15:
            return "duration must be 4-15 s"
        if body.get("resolution") not in ("768P", "2K"):
            return "resolution must be 768P or 2K"
        if frames and body.get("ratio") not in (None, "adaptive"):
            return "a first-frame task takes ratio adaptive"
        return ""
