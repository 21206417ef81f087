"""Browser fixtures: one headless Chromium for these tests, one real ``streamlit run`` per test.

Each test gets its own app server on a free loopback port with its own data folder, so the
job JSON files it reads belong to that test alone. Screenshots and timings go to
``artifacts/e2e/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ..conftest import APP, ROOT, free_port
from .helpers import ARTIFACTS, install_watchers

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1000}

# How long a browser action or an assertion waits for the page. One bound for both: the first
# render after a reload can take several seconds on a busy 2-core machine, and Playwright's
# assertions would otherwise give up after 5 s (no test here asserts a speed).
PAGE_TIMEOUT_MS = 20_000
expect.set_options(timeout=PAGE_TIMEOUT_MS)

# How the embedded mode runs in the browser tests: one image at a time, 0.3 s each, so the
# images arrive one by one and a test can watch them (about 7 s for 20).
E2E_ENV = {
    "FOXPIPE_OFFLINE_DELAY": "0.3",
    "MAX_CONCURRENT_IMAGES": "1",
    "GALLERY_REFRESH": "1.0",
    "SHORT_SIZE": "360x640",  # the finished Short's whole pipeline, at a third of the pixels
    "SHORT_PRERENDER": "true",  # as users run it: segments rendered as scenes are approved
    "NARRATION_AUTO": "true",  # and the narration spoken as soon as the scenes are approved
    "SCENE_IMAGE_SIZE": "",  # the default: images at the video's shape
    "SHORT_FPS": "30",
}


@dataclass
class App:
    url: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


# Package scope, not session: Playwright's sync API keeps an event loop running in this
# thread while it is open, which the async unit tests that follow could not share.
@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _wait_healthy(app: App, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {app.proc.returncode}:\n{app.log_tail()}")
        try:
            with urllib.request.urlopen(f"{app.url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"streamlit did not become healthy in {timeout}s:\n{app.log_tail()}")


def _stop(app: App) -> None:
    if app.proc.poll() is None:
        app.proc.terminate()
        try:
            app.proc.wait(10)
        except subprocess.TimeoutExpired:
            app.proc.kill()
            app.proc.wait(5)


@pytest.fixture
def start_app(clean_env, tmp_path) -> Iterator[Callable[..., App]]:
    """start_app(**env) runs ``streamlit run streamlit_app.py`` with these extra variables."""
    apps: list[App] = []

    def start(**extra: str) -> App:
        port = free_port()
        env = {**os.environ, **E2E_ENV, **{k: str(v) for k, v in extra.items()}}
        log_path = tmp_path / f"streamlit-{port}.log"
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            APP,
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
            # a developer's own secrets.toml must not reach the tests (it may hold real keys)
            "--secrets.files",
            str(tmp_path / "no-secrets.toml"),
        ]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        app = App(f"http://127.0.0.1:{port}", Path(env["FOXPIPE_DATA_DIR"]), env, proc, log_path)
        apps.append(app)
        _wait_healthy(app)
        return app

    yield start
    for app in apps:
        _stop(app)


@pytest.fixture
def new_page(browser, request) -> Iterator[Callable[[], object]]:
    """new_page() opens a page in a fresh browser context (a new Streamlit session each)."""
    contexts = []
    events: dict[object, list[str]] = {}  # page -> what the browser said (kept on a failure)

    def watch(page) -> None:
        said = events.setdefault(page, [])

        def note(line: str) -> None:
            said.append(f"{time.strftime('%H:%M:%S')} {line}")

        page.on(
            "console",
            lambda m: (
                note(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None
            ),
        )
        page.on("pageerror", lambda e: note(f"page error: {e}"))
        page.on("crash", lambda _p: note("the page crashed"))
        page.on(
            "framenavigated",
            lambda f: note(f"navigated: {f.url}") if f == page.main_frame else None,
        )

        def on_socket(ws) -> None:
            note(f"websocket open: {ws.url}")
            ws.on("close", lambda _w: note(f"websocket closed: {ws.url}"))

        page.on("websocket", on_socket)

    def make():
        ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        ctx.set_default_timeout(PAGE_TIMEOUT_MS)
        install_watchers(ctx)
        contexts.append(ctx)
        page = ctx.new_page()
        watch(page)
        return page

    yield make
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:  # keep what the browser showed when it failed
        folder = ARTIFACTS / request.node.name
        folder.mkdir(parents=True, exist_ok=True)
        for c, ctx in enumerate(contexts):
            for p, pg in enumerate(ctx.pages):
                with contextlib.suppress(Exception):  # the page may be gone already
                    pg.screenshot(path=str(folder / f"failed-{c}-{p}.png"))
                with contextlib.suppress(Exception):
                    (folder / f"failed-{c}-{p}.html").write_text(pg.content(), encoding="utf-8")
                said = events.get(pg, [])
                (folder / f"failed-{c}-{p}.log").write_text(
                    "\n".join(said) + "\n", encoding="utf-8"
                )
                print(f"--- browser context {c} page {p} ({pg.url}):", *said[-40:], sep="\n")
    for ctx in contexts:
        ctx.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def shots(request) -> Path:
    """This test's screenshot folder under artifacts/e2e/."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder
