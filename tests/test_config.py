"""Settings read from secrets and the environment: true/false words, bad values said and
replaced by the default, nothing raised."""

from __future__ import annotations

import pytest

from foxpipe.config import Settings, load_settings


@pytest.mark.parametrize("word", ["true", "TRUE", " yes ", "on", "1"])
def test_true_words(word):
    s = load_settings({}, env={"SHORT_PRERENDER": "false", "NARRATION_AUTO": word})
    assert s.narration_auto is True and s.short_prerender is False and not s.problems


@pytest.mark.parametrize("word", ["false", "No", "off", "0"])
def test_false_words(word):
    s = load_settings({"SHORT_PRERENDER": word}, env={})
    assert s.short_prerender is False and not s.problems


@pytest.mark.parametrize("word", ["nope", "flase", "=TRUE()", "2"])
def test_a_word_that_is_neither_is_said_and_the_default_kept(word):
    s = load_settings({"SHORT_PRERENDER": word, "NARRATION_AUTO": word}, env={})
    assert s.short_prerender is Settings.short_prerender is True
    assert s.narration_auto is Settings.narration_auto
    assert "SHORT_PRERENDER must be true or false; using the default." in s.problems
    assert "NARRATION_AUTO must be true or false; using the default." in s.problems


def test_a_secrets_bool_is_taken_as_it_is():
    assert load_settings({"SHORT_PRERENDER": False}, env={}).short_prerender is False


def test_a_negative_or_non_number_is_said_and_the_default_kept():
    s = load_settings({"SHORT_FPS": "-3", "SHORT_RENDER_WORKERS": "many"}, env={})
    assert (
        s.short_fps == Settings.short_fps
        and s.short_render_workers == Settings.short_render_workers
    )
    assert sum("must be a non-negative number" in p for p in s.problems) == 2
