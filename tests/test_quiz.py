import itertools

import pytest

from foxpipe.domain import quiz


def visible_keys(answers):
    return [q.key for q in quiz.visible_questions(answers)]


def test_defaults_are_valid_and_hide_every_branch_that_needs_a_choice():
    result = quiz.validate(quiz.defaults())
    assert result.ok, result.errors
    assert result.answers["animal"] == "Red Fox"
    assert "element" in result.answers  # default power is elemental magic
    for hidden in ("custom_animal", "custom_setback", "mentor", "custom_mentor", "custom_rival"):
        assert hidden not in visible_keys(quiz.defaults())


@pytest.mark.parametrize(
    "parent, value, child",
    [
        ("animal", quiz.OTHER, "custom_animal"),
        ("setback", quiz.OTHER, "custom_setback"),
        ("discovery", "A wise mentor", "mentor"),
        ("discovery", "A glowing ancient artifact", "artifact"),
        ("power", "Elemental magic", "element"),
        ("rival", quiz.OTHER, "custom_rival"),
    ],
)
def test_each_branch_shows_its_question_only_for_its_answer(parent, value, child):
    q = quiz.BY_KEY[parent]
    for option in q.options:
        shown = child in visible_keys(quiz.defaults() | {parent: option})
        assert shown == (option == value), (parent, option, child)


def test_nested_branch_mentor_other_asks_for_description():
    answers = quiz.defaults() | {"discovery": "A wise mentor", "mentor": quiz.OTHER}
    assert "custom_mentor" in visible_keys(answers)
    # The nested branch disappears when its parent branch does.
    answers["discovery"] = "A hidden power within"
    assert "custom_mentor" not in visible_keys(answers)
    assert "mentor" not in visible_keys(answers)


def test_walk_every_combination_of_branching_answers():
    """Every combination of the branching choices validates once its branch is filled."""
    branching = {
        "animal": quiz.BY_KEY["animal"].options,
        "setback": quiz.BY_KEY["setback"].options,
        "discovery": quiz.BY_KEY["discovery"].options,
        "mentor": quiz.BY_KEY["mentor"].options,
        "power": quiz.BY_KEY["power"].options,
        "rival": quiz.BY_KEY["rival"].options,
    }
    fill = {
        "custom_animal": "Arctic hare",
        "custom_setback": "Lost the family map",
        "custom_mentor": "A kind old badger",
        "custom_rival": "A vain peacock",
    }
    seen = 0
    for combo in itertools.product(*branching.values()):
        answers = quiz.defaults() | dict(zip(branching, combo, strict=True))
        missing = quiz.validate(answers)
        # Each visible free-text branch is reported as empty until filled.
        expected_missing = {k for k in fill if k in visible_keys(answers)}
        assert set(missing.errors) == expected_missing
        full = quiz.validate(answers | fill)
        assert full.ok, full.errors
        assert set(full.answers) == set(visible_keys(answers | fill)) - {"look"}
        seen += 1
    assert seen == 8 * 4 * 3 * 4 * 4 * 4


def test_missing_answers_get_a_message_naming_the_question():
    result = quiz.validate({"animal": "", "hero_name": "   "})
    assert not result.ok
    assert "Who is the hero?" in result.errors["animal"]
    assert "name" in result.errors["hero_name"]


def test_unknown_choice_is_rejected():
    result = quiz.validate(quiz.defaults() | {"power": "Laser eyes"})
    assert "not one of the choices" in result.errors["power"]


def test_too_long_text_is_rejected_with_the_limit():
    result = quiz.validate(quiz.defaults() | {"hero_name": "R" * 31})
    assert "at most 30" in result.errors["hero_name"]
    assert quiz.validate(quiz.defaults() | {"hero_name": "R" * 30}).ok


def test_control_characters_are_stripped_and_unicode_kept():
    result = quiz.validate(quiz.defaults() | {"hero_name": "Ru\x00st\u202ey\n Ñoño 🦊"})
    assert result.ok
    assert result.answers["hero_name"] == "Rusty Ñoño 🦊"


def test_punctuation_only_is_not_a_name():
    result = quiz.validate(quiz.defaults() | {"hero_name": "!!!"})
    assert "letters or numbers" in result.errors["hero_name"]


def test_optional_question_may_be_empty():
    assert quiz.validate(quiz.defaults() | {"look": ""}).ok
