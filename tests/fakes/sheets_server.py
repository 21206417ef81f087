"""A fake Google OAuth token endpoint + Sheets API v4 on loopback, for real gspread/google-auth.

The service account's ``token_uri`` points at ``/token``: the fake checks the JWT grant's
signature with the test key's public half and issues bearer tokens; every Sheets call must
carry one. It implements what gspread needs to open a spreadsheet, list/add worksheets,
read a row and append rows; values sent with USER_ENTERED turn ``=...`` into formulas, as
Google does. Scriptable: failures for the next writes (429 RESOURCE_EXHAUSTED, 500, 503,
hang), a full outage, write timestamps on a clock the test chooses.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

STATUS_NAME = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def make_key() -> tuple[str, Any]:
    """(private key PEM for the service-account JSON, public key for checking grants)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, key.public_key()


@dataclass
class Formula:
    text: str


@dataclass
class Write:
    at: float
    kind: str  # "append" or "batchUpdate"
    sheet: str
    rows: int
    value_input: str


@dataclass
class FakeSheets:
    public_key: Any
    sheet_id: str = "sheet-abc123456"
    title: str = "foxpipe log"
    tabs: dict[str, list[list[Any]]] = field(default_factory=lambda: {"Sheet1": []})
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    writes: list[Write] = field(default_factory=list)  # successful writes
    attempts: list[tuple[str, int]] = field(
        default_factory=list
    )  # every write attempt: (kind, status)
    script: deque[Any] = field(default_factory=deque)
    down: int = 0  # when set, every Sheets call answers with this status (an outage)
    hang_seconds: float = 3.0
    retry_after: str = ""
    clock: Callable[[], float] = time.monotonic
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def service_account(self, private_key: str) -> dict[str, str]:
        return {
            "type": "service_account",
            "project_id": "foxpipe-test",
            "private_key_id": "kid-0001",
            "private_key": private_key,
            "client_email": "logger@foxpipe-test.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": f"{self.base}/token",
        }

    def fail_writes(self, *outcomes: Any) -> None:
        with self.lock:
            self.script.extend(outcomes)

    def rows(self, tab: str) -> list[list[Any]]:
        with self.lock:
            return [list(r) for r in self.tabs.get(tab, [])]


def _a1_sheet(rng: str) -> str:
    name = rng.split("!", 1)[0]
    if name.startswith("'") and name.endswith("'"):
        name = name[1:-1].replace("''", "'")
    return name


def make_handler(state: FakeSheets) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms stalls

        def log_message(self, *args: Any) -> None:
            pass

        def _json(
            self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
            self._json(
                status,
                {
                    "error": {
                        "code": status,
                        "message": message,
                        "status": STATUS_NAME.get(status, "UNKNOWN"),
                    }
                },
                headers,
            )

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

        # ------------------------------------------------------------ token
        def _token(self) -> None:
            form = parse_qs(self._body().decode())
            try:
                claims = jwt.decode(
                    form["assertion"][0],
                    state.public_key,
                    algorithms=["RS256"],
                    audience="https://oauth2.googleapis.com/token",
                )
            except (KeyError, jwt.PyJWTError) as e:
                self._json(
                    400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {e}"}
                )
                return
            if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                self._json(400, {"error": "unsupported_grant_type"})
                return
            with state.lock:
                state.token_requests += 1
                token = f"ya29.fake-{state.token_requests}-{claims['iss'][:6]}"
                state.tokens.add(token)
            self._json(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

        def _authorized(self) -> bool:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in state.tokens:
                self._error(401, "Request had invalid authentication credentials.")
                return False
            return True

        def _route(self) -> tuple[str, str, str] | None:
            """(spreadsheet id, rest, query) for /v4/spreadsheets/..."""
            u = urlparse(self.path)
            m = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(.*)", u.path)
            if not m:
                return None
            return m.group(1), unquote(m.group(2)), u.query

        def _scripted(self, write: str) -> bool:
            """Apply an outage or a scripted failure; True when the request was answered."""
            outcome = None
            with state.lock:
                if state.down:
                    outcome = state.down
                elif write and state.script:
                    outcome = state.script.popleft()
            if outcome is None:
                return False
            if outcome == "hang":
                time.sleep(state.hang_seconds)
                outcome = 503
            headers = (
                {"Retry-After": state.retry_after} if state.retry_after and outcome == 429 else None
            )
            message = (
                (
                    "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per "
                    "minute per user'"
                )
                if outcome == 429
                else "The service is currently unavailable."
            )
            if write:
                with state.lock:
                    state.attempts.append((write, outcome))
            self._error(outcome, message, headers)
            return True

        # ------------------------------------------------------------ GET
        def do_GET(self) -> None:  # noqa: N802
            route = self._route()
            if route is None:
                self._error(404, "Not found")
                return
            if not self._authorized() or self._scripted(""):
                return
            sid, rest, _ = route
            if sid != state.sheet_id:
                self._error(404, "Requested entity was not found.")
                return
            if rest == "":
                with state.lock:
                    sheets = [
                        {
                            "properties": {
                                "sheetId": i,
                                "title": t,
                                "index": i,
                                "sheetType": "GRID",
                                "gridProperties": {
                                    "rowCount": max(1000, len(rows)),
                                    "columnCount": 26,
                                },
                            }
                        }
                        for i, (t, rows) in enumerate(state.tabs.items())
                    ]
                self._json(
                    200,
                    {
                        "spreadsheetId": sid,
                        "properties": {
                            "title": state.title,
                            "locale": "en_US",
                            "timeZone": "Etc/GMT",
                        },
                        "sheets": sheets,
                        "spreadsheetUrl": f"{state.base}/d/{sid}",
                    },
                )
                return
            if rest.startswith("/values/"):
                rng = rest[len("/values/") :]
                tab = _a1_sheet(rng)
                with state.lock:
                    rows = state.tabs.get(tab)
                    first = (
                        [[c.text if isinstance(c, Formula) else c for c in rows[0]]] if rows else []
                    )
                if rows is None:
                    self._error(400, f"Unable to parse range: {rng}")
                    return
                body: dict[str, Any] = {"range": rng, "majorDimension": "ROWS"}
                if first:
                    body["values"] = first
                self._json(200, body)
                return
            self._error(404, "Not found")

        # ------------------------------------------------------------ POST
        def do_POST(self) -> None:  # noqa: N802
            if urlparse(self.path).path == "/token":
                self._token()
                return
            route = self._route()
            if route is None:
                self._error(404, "Not found")
                return
            sid, rest, query = route
            body_raw = self._body()
            if not self._authorized():
                return
            kind = (
                "batchUpdate"
                if rest == ":batchUpdate"
                else "append"
                if rest.endswith(":append")
                else ""
            )
            if self._scripted(kind):
                return
            if sid != state.sheet_id:
                self._error(404, "Requested entity was not found.")
                return
            body = json.loads(body_raw or b"{}")
            if kind == "batchUpdate":
                replies = []
                with state.lock:
                    for req in body.get("requests", []):
                        props = req["addSheet"]["properties"]
                        if props["title"] in state.tabs:
                            self._error(
                                400, f'A sheet with the name "{props["title"]}" already exists.'
                            )
                            return
                        state.tabs[props["title"]] = []
                        props = {
                            **props,
                            "sheetId": len(state.tabs) * 100,
                            "index": len(state.tabs) - 1,
                        }
                        replies.append({"addSheet": {"properties": props}})
                    state.writes.append(Write(state.clock(), kind, "", 0, ""))
                    state.attempts.append((kind, 200))
                self._json(200, {"spreadsheetId": sid, "replies": replies})
                return
            if kind == "append":
                rng = rest[len("/values/") : -len(":append")]
                tab = _a1_sheet(rng)
                params = parse_qs(query)
                option = params.get("valueInputOption", [""])[0]
                if option not in ("RAW", "USER_ENTERED"):
                    self._error(400, "Invalid valueInputOption")
                    return
                values = body.get("values", [])
                with state.lock:
                    if tab not in state.tabs:
                        self._error(400, f"Unable to parse range: {rng}")
                        return
                    rows = state.tabs[tab]
                    start = len(rows) + 1
                    for row in values:
                        if option == "USER_ENTERED":
                            row = [
                                Formula(v) if isinstance(v, str) and v[:1] in "=+" else v
                                for v in row
                            ]
                        rows.append(row)
                    state.writes.append(Write(state.clock(), kind, tab, len(values), option))
                    state.attempts.append((kind, 200))
                ncols = max((len(r) for r in values), default=0)
                updated = f"'{tab}'!A{start}:Z{start + len(values) - 1}"
                self._json(
                    200,
                    {
                        "spreadsheetId": sid,
                        "tableRange": f"'{tab}'!A1:Z{start - 1}",
                        "updates": {
                            "spreadsheetId": sid,
                            "updatedRange": updated,
                            "updatedRows": len(values),
                            "updatedColumns": ncols,
                            "updatedCells": len(values) * ncols,
                        },
                    },
                )
                return
            self._error(404, "Not found")

    return Handler


class SheetsServer:
    def __init__(self, public_key: Any, **kwargs: Any):
        self.state = FakeSheets(public_key=public_key, **kwargs)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.httpd.daemon_threads = True
        self.state.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeSheets:
        self.thread.start()
        return self.state

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def point_gspread_at(monkeypatch: Any, base: str) -> None:
    """Redirect gspread's Sheets URLs (the constants as imported into gspread.http_client)."""
    import gspread.http_client as hc

    for name in dir(hc):
        value = getattr(hc, name)
        if (
            name.startswith("SPREADSHEET")
            and isinstance(value, str)
            and value.startswith("https://sheets.googleapis.com")
        ):
            monkeypatch.setattr(hc, name, value.replace("https://sheets.googleapis.com", base))
