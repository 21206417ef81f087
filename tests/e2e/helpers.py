"""Steps a user takes in the browser, with stable selectors.

Streamlit gives every element made with ``key=...`` the CSS class ``st-key-<key>``; the
steps below find widgets by those keys (q_<question>, scene_<story>_<n>, approve_scenes,
ok_/no_/why_<job>_<i>, approve_all, download_zip, ...).
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import BrowserContext, Locator, Page, expect

from ..conftest import ROOT

ARTIFACTS = ROOT / "artifacts" / "e2e"
TIMINGS: list[str] = []  # printed in the terminal summary and written to timings.txt

# Runs in every document: records when each tile's image is first visible (loaded, laid
# out) and when each keyed button is clicked, with the browser's clock (Date.now(), the
# same wall clock as the app's time.time() on this machine).
WATCH_JS = r"""
(() => {
  if (window.__fox) return;
  const fox = window.__fox = {seen: {}, first: {}, clicks: [], loadedAt: Date.now()};
  const scan = () => {
    const now = Date.now();
    for (const img of document.querySelectorAll('[data-testid="stMain"] img')) {
      if (!img.complete || !img.naturalWidth) continue;
      const r = img.getBoundingClientRect();
      if (!r.width || !r.height) continue;
      const block = img.closest('[data-testid="stVerticalBlock"]');
      const m = block && /Scene (\d+)/.exec((block.textContent || '').slice(0, 60));
      if (!m) continue;
      const key = m[1] + ' ' + img.src;  // a regenerated image has a new src
      if (!(key in fox.seen)) fox.seen[key] = now;
      if (!(m[1] in fox.first)) fox.first[m[1]] = now;
    }
  };
  // Scene number -> the statuses its tile showed, in order (consecutive repeats dropped).
  fox.status = {};
  const statuses = () => {
    for (const h of document.querySelectorAll('[data-testid="stMain"] [data-testid="stMarkdownContainer"] strong')) {
      const m = /^Scene (\d+)$/.exec(h.textContent || '');
      const p = m && h.closest('[data-testid="stMarkdownContainer"]');
      const st = p && /(regenerating|generating|queued|ready|approved|failed)/.exec(p.textContent || '');
      if (!st) continue;
      const list = fox.status[m[1]] = fox.status[m[1]] || [];
      if (list[list.length - 1] !== st[1]) list.push(st[1]);
    }
  };
  setInterval(() => { scan(); statuses(); }, 20);
  document.addEventListener('click', (e) => {
    const el = e.target && e.target.closest && e.target.closest('[class*="st-key-"]');
    const m = el && /st-key-(\S+)/.exec(el.className);
    if (m) fox.clicks.push([m[1], Date.now()]);
  }, true);
})();
"""


def install_watchers(ctx: BrowserContext) -> None:
    ctx.add_init_script(WATCH_JS)


def record_timing(line: str) -> None:
    TIMINGS.append(line)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings.txt").write_text("\n".join(TIMINGS) + "\n", encoding="utf-8")
    print(line)


def key(name: str) -> str:
    """CSS selector of the element made with key=name (exact class match)."""
    return f'[class~="st-key-{name}"]'


# ---------------------------------------------------------------------- generic
def wait_idle(page: Page, timeout: float = 20_000) -> None:
    """Wait until the app's script run has finished."""
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
        " return a && a.getAttribute('data-test-script-state') !== 'running'; }",
        timeout=timeout,
    )


def screenshot(page: Page, path: Path) -> Path:
    """The whole page: Streamlit scrolls inside <main>, so grow the viewport to its height."""
    size = page.viewport_size or {"width": 1400, "height": 1000}
    page.mouse.move(size["width"] - 20, size["height"] - 20)  # no hover highlight in the picture
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }"
    )
    page.set_viewport_size(
        {"width": size["width"], "height": max(size["height"], min(int(height), 8000))}
    )
    page.wait_for_timeout(150)  # layout after the resize
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def main_text(page: Page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def query_param(page: Page, name: str) -> str:
    return parse_qs(urlparse(page.url).query).get(name, [""])[0]


# ---------------------------------------------------------------------- quiz
def at_page(name: str, *params: str):
    """A URL test for wait_for_url: this page, with these query parameters (others, such as
    the browser's ``?me=`` token, may come in any order)."""
    from urllib.parse import parse_qs, urlparse

    def match(url: str) -> bool:
        u = urlparse(url)
        return u.path.rstrip("/").endswith("/" + name) and all(
            p in parse_qs(u.query) for p in params
        )

    return match


def open_quiz(page: Page, base: str) -> None:
    page.goto(base + "/")
    page.locator(key("write_story") + " button").wait_for()


def choose(page: Page, question: str, option: str) -> None:
    """Pick an option of the quiz selectbox q_<question>."""
    box = page.locator(key(f"q_{question}") + " input[role=combobox]")
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_function(
        "([sel, v]) => { const i = document.querySelector(sel); return i && i.value === v; }",
        arg=[key(f"q_{question}") + " input[role=combobox]", option],
    )
    wait_idle(page)


def type_answer(page: Page, question: str, text: str) -> None:
    field = page.locator(key(f"q_{question}") + " input")
    field.fill(text)
    field.press("Enter")
    wait_idle(page)


def write_story(page: Page) -> str:
    """Press "Write my story"; returns the story id once the Scenes page shows."""
    page.locator(key("write_story") + " button").click()
    page.wait_for_url(at_page("scenes"))
    page.locator(key("approve_scenes") + " button").wait_for()
    return story_id(page)


# ---------------------------------------------------------------------- scenes
def story_id(page: Page) -> str:
    cls = page.locator('[class*="st-key-scene_"]').first.get_attribute("class") or ""
    name = next(c for c in cls.split() if c.startswith("st-key-scene_"))
    return name.removeprefix("st-key-scene_").rsplit("_", 1)[0]


def scene_box(page: Page, sid: str, n: int) -> Locator:
    return page.locator(key(f"scene_{sid}_{n}") + " textarea")


def edit_scene(page: Page, sid: str, n: int, text: str) -> None:
    box = scene_box(page, sid, n)
    box.fill(text)
    box.press("Control+Enter")  # a text area sends its value on Ctrl+Enter or blur
    wait_idle(page)


def approve_scenes(page: Page) -> str:
    """Press "Approve scenes"; returns the job id once the gallery's URL carries it."""
    page.locator(key("approve_scenes") + " button").click()
    page.wait_for_url(at_page("gallery", "job"))
    return query_param(page, "job")


# ---------------------------------------------------------------------- gallery
def shown_scenes(page: Page) -> dict[int, str]:
    """Scene number -> src of the image its tile shows now (loaded and laid out)."""
    pairs = page.evaluate(
        """() => Array.from(document.querySelectorAll('[data-testid="stMain"] img')).flatMap(img => {
             if (!img.complete || !img.naturalWidth) return [];
             const b = img.closest('[data-testid="stVerticalBlock"]');
             const m = b && /Scene (\\d+)/.exec((b.textContent || '').slice(0, 60));
             return m ? [[Number(m[1]), img.src]] : [];
           })"""
    )
    return {n: src for n, src in pairs}


def first_seen(page: Page) -> dict[int, float]:
    """Scene number -> epoch seconds when its first image became visible in this document."""
    return {int(k): v / 1000 for k, v in page.evaluate("() => window.__fox.first").items()}


def seen_versions(page: Page) -> dict[tuple[int, str], float]:
    out = {}
    for k, v in page.evaluate("() => window.__fox.seen").items():
        n, src = k.split(" ", 1)
        out[(int(n), src)] = v / 1000
    return out


def status_history(page: Page, n: int) -> list[str]:
    """The statuses scene n's tile showed in this document, in order."""
    return page.evaluate("(n) => window.__fox.status[String(n)] || []", n)


def click_time(page: Page, name: str) -> float:
    """Epoch seconds of the last click on the element keyed ``name``."""
    clicks = [t for k, t in page.evaluate("() => window.__fox.clicks") if k == name]
    assert clicks, f"no click on {name} recorded"
    return clicks[-1] / 1000


def wait_shown(page: Page, predicate, timeout: float = 30.0) -> dict[int, str]:
    """Wait until the images the tiles show (scene -> src, loaded) satisfy ``predicate``: a
    tile's new image is still loading for a moment after its status says ready."""
    deadline = time.monotonic() + timeout
    while True:
        shown = shown_scenes(page)
        if predicate(shown):
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"the tiles never showed what was expected: {sorted(shown)}")
        page.wait_for_timeout(100)


def wait_images(page: Page, count: int, timeout: float = 60.0) -> list[int]:
    """Wait until at least ``count`` tiles show an image; returns the counts seen on the way."""
    counts: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(shown_scenes(page))
        if not counts or counts[-1] != n:
            counts.append(n)
        if n >= count:
            return counts
        page.wait_for_timeout(100)
    raise AssertionError(f"only {counts[-1] if counts else 0} of {count} images appeared: {counts}")


def tile(page: Page, n: int) -> Locator:
    """The bordered tile of scene n (the innermost block whose text starts with it)."""
    heading = page.locator('[data-testid="stMarkdownContainer"] strong').filter(
        has_text=re.compile(rf"^Scene {n}$")
    )
    return page.locator('[data-testid="stVerticalBlock"]').filter(has=heading).last


def reject(page: Page, job: str, n: int, reason: str) -> None:
    """Open scene n's Reject dialog, pick a reason, and reject it (scene n = slot n-1)."""
    i = n - 1
    page.locator(key(f"rej_{job}_{i}") + " button").click()
    dialog = page.get_by_role("dialog")
    why = dialog.locator(key(f"why_{job}_{i}"))
    why.locator("input").click()
    page.get_by_role("option", name=reason, exact=True).click()
    dialog.locator('[data-testid="stCaptionContainer"]').first.click()  # close the option list
    dialog.locator(key(f"no_{job}_{i}") + " button").click()
    expect(dialog).to_have_count(0)


def download(page: Page, button_key: str) -> bytes:
    # A button with help= has a second, zero-sized copy in the DOM: take the visible one.
    button = page.locator(key(button_key) + " button").filter(visible=True)
    expect(button).to_have_count(1)
    with page.expect_download() as info:
        button.click()
    return Path(info.value.path()).read_bytes()


def download_zip(page: Page, button_key: str = "download_zip") -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(download(page, button_key)))


def make_slideshow(
    page: Page, seconds: float = 0.5, captions: bool = True, timeout: float = 120_000
) -> None:
    """In the gallery's Videos section: the local slideshow, ``seconds`` per scene."""
    page.locator(key("generate_video") + " button").wait_for()
    field = page.locator(key("video_seconds") + " input")
    field.fill(f"{seconds:g}")
    field.press("Enter")
    wait_idle(page)
    toggle = page.locator(key("video_captions") + " input[type=checkbox]")
    if toggle.is_checked() != captions:
        page.locator(key("video_captions") + " label").click()
        wait_idle(page)
    page.locator(key("generate_video") + " button").click()
    page.get_by_text("Story video ready").wait_for(timeout=timeout)
    page.locator('[data-testid="stMain"] video').first.wait_for()


def read_job(data_dir: Path, job: str) -> dict[str, Any]:
    """The job as the app's store holds it now (the app's own SQLite file)."""
    from foxpipe.store import Store, default_url

    store = Store(default_url(data_dir))
    try:
        found = store.get_job(job)
    finally:
        store.close()
    if found is None:
        raise ValueError(f"job {job[:6]} is not in the store")
    return found.to_dict()


def stored_job_ids(data_dir: Path) -> list[str]:
    from foxpipe.store import Store, default_url

    store = Store(default_url(data_dir))
    try:
        return [r.id for r in store.list_jobs()]
    finally:
        store.close()


def wait_job(data_dir: Path, job: str, predicate, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            last = read_job(data_dir, job)
        except (OSError, ValueError):  # not stored yet
            last = {}
        if last and predicate(last):
            return last
        time.sleep(0.1)
    statuses = [s["status"] for s in last.get("slots", [])]
    raise AssertionError(f"job {job[:6]} did not reach the state in {timeout}s: {statuses}")


def start_job(page: Page, base: str) -> str:
    """Quiz with its defaults, story, approve: returns the new job's id (gallery open)."""
    open_quiz(page, base)
    write_story(page)
    return approve_scenes(page)
