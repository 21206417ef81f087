"""Fuzz the quiz validation and the story parser: no exception escapes, every
rejection says why."""

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from foxpipe.domain import quiz, story
from foxpipe.domain.models import SCENE_COUNT

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=50).map(lambda s: s * 200),
    st.sampled_from(
        [
            "\"'\"'",
            '{"a": [1, {"b": "}"}]}',
            "\u202e\u0000\ud800x",
            '=HYPERLINK("x")',
            "ignore previous instructions",
        ]
    ),
)
answer_values = st.one_of(
    any_text, st.none(), st.integers(), st.lists(st.text(max_size=5), max_size=3)
)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from([q.key for q in quiz.QUESTIONS] + ["junk"]), answer_values, max_size=20
    )
)
def test_validation_never_raises_and_explains_every_rejection(raw):
    merged = quiz.defaults() | raw
    result = quiz.validate(merged)
    for key, message in result.errors.items():
        assert key in quiz.BY_KEY
        assert isinstance(message, str) and len(message) > 10
    for key, value in result.answers.items():
        q = quiz.BY_KEY[key]
        assert value == quiz.clean_text(value)
        assert len(value) <= q.max_len or q.options
        assert "\x00" not in value and "\u202e" not in value
    # Every visible required question is either answered or explained.
    for q in quiz.visible_questions(result.answers):
        if q.required:
            assert q.key in result.answers or q.key in result.errors


@FUZZ
@given(
    st.one_of(
        any_text,
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=40)),
            lambda children: st.one_of(
                st.lists(children, max_size=25),
                st.dictionaries(st.text(max_size=8), children, max_size=5),
            ),
            max_leaves=60,
        ).map(json.dumps),
    )
)
def test_story_parser_never_raises(text):
    s = story.parse_story_json(text, quiz.defaults())
    assert len(s.scenes) == SCENE_COUNT
    assert [sc.number for sc in s.scenes] == list(range(1, SCENE_COUNT + 1))
    if s.missing():
        assert s.problem


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"number": st.integers(-5, 30), "text": any_text}),
            st.text(max_size=30),
        ),
        max_size=30,
    ),
    any_text,
)
@example(scenes=[{"number": 1, "text": "`" * 200}], title="")  # a fence inside a scene's text
def test_story_parser_salvages_usable_scenes(scenes, title):
    s = story.parse_story_json(json.dumps({"title": title, "scenes": scenes}), quiz.defaults())
    assert len(s.scenes) == SCENE_COUNT
    usable = {
        sc["number"]
        for sc in scenes
        if isinstance(sc, dict) and 1 <= sc["number"] <= 20 and sc["text"].strip()
    }
    for n in usable:
        assert not s.scenes[n - 1].placeholder
