"""A scene longer than the limit is never cut behind the user's back: the text box itself stops
at the limit (max_chars) and says so, and what is kept is exactly what the box shows."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from foxpipe.domain import quiz
from foxpipe.domain.story import SCENE_MAX_CHARS
from tests.apptest import click_write
from tests.conftest import APP


def test_long_scene_is_limited_where_it_is_typed():
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    box = at.text_area[0]
    assert box.proto.max_chars == SCENE_MAX_CHARS == 1200
    long_text = ("The fox runs through the snowy forest. " * 50)[:1500]
    box.input(long_text).run()
    assert not at.exception
    shown = at.text_area[0].value
    kept = at.session_state.story.scenes[0].text
    # Nothing silently cut: the story keeps exactly what the box shows.
    assert kept == quiz.clean_text(shown)
    assert len(shown) <= SCENE_MAX_CHARS
    # Typed up to the limit: the page says so where it is typed.
    at.text_area[0].input(long_text[:SCENE_MAX_CHARS]).run()
    assert at.text_area[0].value == long_text[:SCENE_MAX_CHARS]
    assert at.session_state.story.scenes[0].text == quiz.clean_text(long_text[:SCENE_MAX_CHARS])
    assert any("Scene 1 is at the 1 200-character limit" in c.value for c in at.caption)


def test_short_scene_has_no_notice():
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    at.text_area[0].input("A short scene.").run()
    assert at.session_state.story.scenes[0].text == "A short scene."
    assert not any("character limit" in c.value for c in at.caption)
