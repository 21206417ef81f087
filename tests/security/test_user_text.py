"""User text is shown as text: a scene or title holding a Markdown image or a data: link does
not become an image or a link in any element that renders Markdown (AppTest element tree)."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from foxpipe.safety import escape_markdown
from tests.apptest import click_approve, click_write
from tests.conftest import APP

IMAGE = "![x](http://127.0.0.1:9/x.png)"
LINK = "[click](data:text/html,<script>alert(1)</script>)"
HOSTILE = f"The fox runs. {IMAGE} then {LINK} <img src=x> **bold** :red[red] $x^2$"


def markdown_bodies(at: AppTest) -> list[str]:
    """The source of every element whose body Streamlit renders as Markdown."""
    kinds = (
        "markdown",
        "caption",
        "title",
        "header",
        "subheader",
        "error",
        "warning",
        "info",
        "success",
        "latex",
    )
    out: list[str] = []
    for root in (at.main, at.sidebar):
        for kind in kinds:
            out += [str(e.value) for e in root.get(kind)]
    return out


def live_markup(body: str) -> list[str]:
    """Markdown links/images, autolinks and raw HTML tags that would take effect in the body
    (backslash-escaped characters show literally, so they are removed first)."""
    bare = re.sub(r"\\.", "", body)
    return re.findall(r"!?\[[^\]]*\]\([^)]*\)|<[a-zA-Z/][^>]*>|\]\(", bare)


def unescaped(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body)


@pytest.mark.parametrize(
    "text", [IMAGE, LINK, HOSTILE, "- list\n# heading\n> quote\n1. one", "a_b _c_ *d*"]
)
def test_escaped_text_has_no_markup_and_reads_the_same(text):
    body = escape_markdown(text)
    assert not live_markup(body)
    assert unescaped(body).replace("  \n", "\n") == text


def test_scene_text_and_title_render_as_text_in_gallery_and_history(monkeypatch):
    monkeypatch.setenv("FOXPIPE_OFFLINE_DELAY", "5")  # the tiles still show their scene text
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    at.text_area[0].input(HOSTILE).run()
    at.session_state.story.title = f"Title {IMAGE} {LINK}"
    at.run()
    pages = {"scenes": markdown_bodies(at)}
    click_approve(at)
    assert not at.exception
    pages["gallery"] = markdown_bodies(at)
    at.switch_page("pages/history.py").run()
    assert not at.exception
    pages["history"] = markdown_bodies(at)

    for name, bodies in pages.items():
        hits = [(b, live_markup(b)) for b in bodies if live_markup(b)]
        assert not hits, f"{name}: {hits}"
    # The text itself is shown (literally), not dropped.
    assert any(
        IMAGE in unescaped(b) and LINK in unescaped(b) for b in pages["gallery"]
    )  # the tile caption
    assert any(f"Title {IMAGE}" in unescaped(b) for b in pages["gallery"])  # the title
    assert any(f"Title {IMAGE}" in unescaped(b) for b in pages["history"])
