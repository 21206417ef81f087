"""A fake Cloudinary Upload API on loopback, for the real ``cloudinary`` SDK.

``CLOUDINARY_URL=cloudinary://KEY:SECRET@CLOUD?upload_prefix=http://127.0.0.1:PORT`` points the
SDK here. It checks the signature (SHA-1 of the sorted parameters + secret, as Cloudinary
does) or the unsigned preset, stores the bytes, answers with Cloudinary's JSON, serves the
stored images at their ``secure_url``, keeps existing assets unless ``overwrite`` is true, and
can be scripted to fail (status codes, non-JSON 502 pages, hangs).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_CLASS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    420: "Enhance Your Calm",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Asset:
    public_id: str
    data: bytes
    version: int
    tags: list[str]
    folder: str
    resource_type: str = "image"  # image, video (also audio) or raw


@dataclass
class UploadCall:
    status: int
    fields: dict[str, str]
    size: int


@dataclass
class FakeCloudinary:
    api_key: str = "key123456"
    api_secret: str = "secret-abcdef"
    cloud: str = "demo-cloud"
    preset: str = ""
    assets: dict[str, Asset] = field(default_factory=dict)
    calls: list[UploadCall] = field(default_factory=list)
    script: deque[Any] = field(default_factory=deque)  # int status, "hang", "html502"
    hang_seconds: float = 5.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, key: str | None = None, secret: str | None = None) -> str:
        return (
            f"cloudinary://{key or self.api_key}:{secret or self.api_secret}@{self.cloud}"
            f"?upload_prefix={self.base}"
        )

    def fail(self, *outcomes: Any) -> None:
        """Script the next uploads: a status code, "hang" or "html502" each."""
        with self.lock:
            self.script.extend(outcomes)

    def uploads_ok(self) -> list[UploadCall]:
        return [c for c in self.calls if c.status == 200]


def _signature(fields: dict[str, str], secret: str) -> str:
    skip = {"file", "api_key", "signature", "resource_type", "cloud_name"}
    parts = [
        f"{k}={v}".replace("&", "%26") for k, v in sorted(fields.items()) if k not in skip and v
    ]
    return hashlib.sha1(("&".join(parts) + secret).encode()).hexdigest()


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], bytes]:
    msg = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    data = b""
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if name == "file":
            data = payload
        elif name:
            key = name[:-2] if name.endswith("[]") else name
            value = payload.decode()
            fields[key] = f"{fields[key]},{value}" if key in fields else value
    return fields, data


def make_handler(state: FakeCloudinary) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms stalls

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        _call: UploadCall | None = None

        def _record(self, status: int) -> None:
            if self._call is not None:  # recorded before the client sees the answer
                self._call.status = status

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._record(status)
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"error": {"message": message}})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            kinds = {
                f"/v1_1/{state.cloud}/{kind}/upload": kind for kind in ("image", "video", "raw")
            }
            if self.path not in kinds:
                self._error(404, f"Unknown path {self.path}")
                return
            fields, data = _parse_multipart(self.headers.get("Content-Type", ""), body)
            fields["resource_type"] = kinds[self.path]
            with state.lock:
                outcome = state.script.popleft() if state.script else None
                self._call = UploadCall(0, fields, len(data))
                state.calls.append(self._call)
            self._handle(fields, data, outcome)

        def _handle(self, fields: dict[str, str], data: bytes, outcome: Any) -> int:
            if outcome == "hang":
                self._record(599)
                time.sleep(state.hang_seconds)
                self._error(500, "hung")
                return 599
            if outcome == "html502":
                raw = b"<html><body>502 Bad Gateway</body></html>"
                self._record(502)
                self.send_response(502)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                return 502
            if isinstance(outcome, int):
                self._error(outcome, f"Scripted {ERROR_CLASS.get(outcome, 'error')}")
                return outcome
            preset = fields.get("upload_preset", "")
            if preset:
                if not state.preset or preset != state.preset:
                    self._error(400, f"Upload preset not found: {preset}")
                    return 400
                if "signature" not in fields and "overwrite" in fields:
                    self._error(
                        400, "overwrite parameter is not allowed when using unsigned upload"
                    )
                    return 400
            if "signature" in fields or not preset:
                if fields.get("api_key") != state.api_key:
                    self._error(401, "Unknown API key")
                    return 401
                if fields.get("signature") != _signature(fields, state.api_secret):
                    self._error(401, "Invalid Signature")
                    return 401
                if abs(time.time() - int(fields.get("timestamp", "0"))) > 3600:
                    self._error(400, "Stale request")
                    return 400
            if not data:
                self._error(400, "Missing required parameter - file")
                return 400
            folder = fields.get("folder", "")
            name = fields.get("public_id") or hashlib.sha1(data).hexdigest()[:20]
            public_id = f"{folder}/{name}" if folder else name
            overwrite = fields.get("overwrite", "0" if preset else "1") in ("1", "true")
            with state.lock:
                existing = state.assets.get(public_id)
                if existing is not None and not overwrite:
                    self._json(200, self._describe(existing, existing=True))
                    return 200
                version = int(time.time()) + len(state.assets)
                asset = Asset(
                    public_id,
                    data,
                    version,
                    [t for t in fields.get("tags", "").split(",") if t],
                    folder,
                    fields.get("resource_type", "image"),
                )
                state.assets[public_id] = asset
            self._json(200, self._describe(asset, existing=False))
            return 200

        def _describe(self, a: Asset, existing: bool) -> dict[str, Any]:
            ext = {"image": "png", "video": "mp4", "raw": "bin"}[a.resource_type]
            path = f"/{state.cloud}/{a.resource_type}/upload/v{a.version}/{a.public_id}.{ext}"
            out = {
                "asset_id": hashlib.md5(a.public_id.encode()).hexdigest(),
                "public_id": a.public_id,
                "version": a.version,
                "signature": hashlib.sha1(a.data).hexdigest(),
                "width": 64,
                "height": 96,
                "format": ext,
                "resource_type": a.resource_type,
                "created_at": "2026-11-01T10:00:00Z",
                "tags": a.tags,
                "bytes": len(a.data),
                "type": "upload",
                "etag": hashlib.md5(a.data).hexdigest(),
                "placeholder": False,
                "url": f"{state.base}{path}",
                "secure_url": f"{state.base}{path}",
                "asset_folder": a.folder,
                "original_filename": "file",
            }
            if existing:
                out["existing"] = True
            return out

        def do_GET(self) -> None:  # noqa: N802
            prefix = next(
                (
                    f"/{state.cloud}/{k}/upload/"
                    for k in ("image", "video", "raw")
                    if self.path.startswith(f"/{state.cloud}/{k}/upload/")
                ),
                "",
            )
            if not prefix:
                self._error(404, "not found")
                return
            rest = self.path[len(prefix) :].split("/")
            while rest and not (rest[0].startswith("v") and rest[0][1:].isdigit()):
                rest.pop(0)  # transformations such as c_scale,w_360
            public_id = "/".join(rest[1:]).rsplit(".", 1)[0]
            asset = state.assets.get(public_id)
            if asset is None:
                self._error(404, "Resource not found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(asset.data)))
            self.end_headers()
            self.wfile.write(asset.data)

    return Handler


class CloudinaryServer:
    def __init__(self, **kwargs: Any):
        self.state = FakeCloudinary(**kwargs)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.httpd.daemon_threads = True
        self.state.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeCloudinary:
        self.thread.start()
        return self.state

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
