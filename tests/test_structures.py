"""Story structures: the data, the quiz that follows each one (every structure × branch
combination), the offline writer per structure, prompts and hero forms, and old answers."""

from __future__ import annotations

import itertools
import math

import pytest

from foxpipe.domain import prompts, quiz, story, structures
from foxpipe.domain.models import SCENE_COUNT, Job, Slot, Story
from foxpipe.engine import generation, hero

ALL = structures.STRUCTURES
NEW = [s for s in ALL if s is not structures.POWER_FANTASY]

# Free text for every "Something else…" branch, so a combination can be completed.
FILL = {
    "custom_animal": "Arctic hare",
    "custom_setback": "Lost the family map",
    "custom_mentor": "A kind old badger",
    "custom_rival": "A vain peacock",
    "custom_wrong": "Hid the hero's map",
    "custom_rescued": "The old village badger",
    "custom_captor": "A frozen island",
    "custom_friend": "A nervous hedgehog",
    "custom_danger": "A volcano waking up",
    "custom_bully": "A loud bossy goose",
    "custom_trick": "A painted mask that glows",
}

# The questions each structure asks beyond the shared ones (branches within them included).
OWN = {
    "power_fantasy": {
        "setback",
        "custom_setback",
        "discovery",
        "artifact",
        "mentor",
        "custom_mentor",
        "power",
        "element",
        "rival",
        "custom_rival",
    },
    "rescue": {"rescued", "custom_rescued", "captor", "custom_captor"},
    "friendship": {"friend", "custom_friend", "odds"},
    "survival": {"danger", "custom_danger", "destination"},
    "trickster": {"bully", "custom_bully", "trick", "custom_trick"},
    "redemption": {"rival", "custom_rival", "wrong", "custom_wrong"},
}
SHARED = {
    "structure",
    "animal",
    "custom_animal",
    "hero_name",
    "setting",
    "tone",
    "style",
    "aspect",
    "look",
}

# Every option of every question that opens a branch, per structure: 6144 = 8*4*3*4*4*4, ...
EXPECTED_COMBINATIONS = {
    "power_fantasy": 6144,
    "rescue": 128,
    "friendship": 32,
    "survival": 40,
    "trickster": 128,
    "redemption": 128,
}


def visible_keys(answers):
    return [q.key for q in quiz.visible_questions(answers)]


def with_structure(s: structures.Structure, **over) -> dict[str, str]:
    return quiz.defaults() | {"structure": s.label} | over


def answers(s: structures.Structure, **over) -> dict[str, str]:
    result = quiz.validate(with_structure(s, **over))
    assert result.ok, result.errors
    return result.answers


# ---------------------------------------------------------------- the data


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.key)
def test_every_structure_has_20_named_beats_in_acts_with_its_own_prompts(s):
    assert len(s.beats) == SCENE_COUNT == 20
    assert sum(act.scene_count for act in s.acts) == 20 and len(s.acts) >= 3
    assert all(b.name and b.goal for b in s.beats)
    assert len({b.name for b in s.beats}) >= 6
    assert s.guidance and s.visual_notes and s.summary
    sheet = s.beat_sheet()
    for act in s.acts:
        assert f"{act.name}:" in sheet
    for n, b in enumerate(s.beats, 1):
        assert f"\n{n}. {b.name}: {b.goal}" in "\n" + sheet
        assert s.beat(n) == b
    assert s.act_of(1) is s.acts[0] and s.act_of(20) is s.acts[-1]


def test_six_distinct_structures_and_the_power_fantasy_keeps_its_beats():
    assert len(ALL) >= 6
    assert (
        len({s.key for s in ALL})
        == len({s.label for s in ALL})
        == len({s.guidance for s in ALL})
        == len(ALL)
    )
    assert len({tuple(b.name for b in s.beats) for s in ALL}) == len(ALL)
    assert structures.POWER_FANTASY.beats == story.BEATS
    assert prompts.TRANSFORMED_FROM == 11


def test_form_for_only_the_power_fantasy_has_a_second_form():
    pf = structures.POWER_FANTASY
    assert [structures.form_for(pf, n) for n in range(1, 21)] == ["base"] * 10 + ["powered"] * 10
    for s in NEW:
        assert [structures.form_for(s, n) for n in range(1, 21)] == ["base"] * 20, s.key
        assert s.forms() == ("base",)
    assert pf.forms() == ("base", "powered")
    # Labels, keys and answers work too; answers without a structure are the power fantasy.
    assert structures.form_for("Rescue mission", 15) == structures.form_for("rescue", 15) == "base"
    assert structures.form_for({"structure": "Survival journey"}, 20) == "base"
    assert structures.form_for({"hero_name": "Pip"}, 11) == "powered"
    assert structures.form_for({"structure": "No such story"}, 11) == "powered"
    assert structures.form_label(pf, "powered") == "Powered-up form (scenes 11-20)"
    assert structures.form_label(structures.RESCUE, "base") == "The hero"


# ---------------------------------------------------------------- the quiz


def test_the_structure_is_asked_first_with_every_structure_as_a_choice():
    first = quiz.QUESTIONS[0]
    assert first.key == "structure" and first.options == structures.LABELS
    assert first.default == structures.POWER_FANTASY.label
    assert visible_keys(quiz.defaults())[0] == "structure"


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.key)
def test_each_structure_asks_its_own_questions_and_none_of_the_others(s):
    asked = {q.key for q in quiz.questions_for(s)}
    assert asked == SHARED | OWN[s.key]
    shown = set(visible_keys(with_structure(s)))
    others = set().union(*OWN.values()) - OWN[s.key]
    assert not shown & others, shown & others
    # The defaults show every top-level question of the structure.
    top = {
        k for k in OWN[s.key] if quiz.BY_KEY[k].show_if == ("structure", quiz.BY_KEY[k].show_if[1])
    }
    assert top <= shown


@pytest.mark.parametrize(
    "s, parent, value, child",
    [
        (structures.RESCUE, "rescued", quiz.OTHER, "custom_rescued"),
        (structures.RESCUE, "captor", quiz.OTHER, "custom_captor"),
        (structures.FRIENDSHIP, "friend", quiz.OTHER, "custom_friend"),
        (structures.SURVIVAL, "danger", quiz.OTHER, "custom_danger"),
        (structures.TRICKSTER, "bully", quiz.OTHER, "custom_bully"),
        (structures.TRICKSTER, "trick", quiz.OTHER, "custom_trick"),
        (structures.REDEMPTION, "rival", quiz.OTHER, "custom_rival"),
        (structures.REDEMPTION, "wrong", quiz.OTHER, "custom_wrong"),
        (structures.POWER_FANTASY, "discovery", "A wise mentor", "mentor"),
    ],
)
def test_each_structure_branch_shows_its_question_only_for_its_answer(s, parent, value, child):
    for option in quiz.BY_KEY[parent].options:
        shown = child in visible_keys(with_structure(s, **{parent: option}))
        assert shown == (option == value), (s.key, parent, option)
    # ...and never under another structure, whatever the answer.
    for other in ALL:
        if child not in OWN[other.key]:
            assert child not in visible_keys(with_structure(other, **{parent: value}))


def branching_questions(s: structures.Structure) -> list[quiz.Question]:
    """The questions of ``s`` that open a branch (some other question depends on them)."""
    parents = {q.show_if[0] for q in quiz.QUESTIONS if q.show_if}
    return [q for q in quiz.questions_for(s) if q.key in parents and q.key != "structure"]


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.key)
def test_walk_every_combination_of_branching_answers_per_structure(s):
    """Every combination of the structure's branching choices validates once its branches are filled."""
    branching = {q.key: q.options for q in branching_questions(s)}
    assert math.prod(len(v) for v in branching.values()) == EXPECTED_COMBINATIONS[s.key]
    seen = 0
    for combo in itertools.product(*branching.values()):
        raw = with_structure(s) | dict(zip(branching, combo, strict=True))
        missing = quiz.validate(raw)
        # Each visible free-text branch is reported as empty until filled, with its label.
        expected_missing = {k for k in FILL if k in visible_keys(raw)}
        assert set(missing.errors) == expected_missing
        for k in expected_missing:
            assert quiz.BY_KEY[k].label in missing.errors[k] and "empty" in missing.errors[k]
        full = quiz.validate(raw | FILL)
        assert full.ok, full.errors
        assert full.answers["structure"] == s.label
        assert set(full.answers) == set(visible_keys(raw | FILL)) - {"look"}
        assert set(full.answers) <= SHARED | OWN[s.key]
        seen += 1
    assert seen == EXPECTED_COMBINATIONS[s.key]


def test_structure_validation_messages():
    bad = quiz.validate(quiz.defaults() | {"structure": "Space opera"})
    assert (
        "not one of the choices" in bad.errors["structure"]
        and "What kind of story?" in bad.errors["structure"]
    )
    empty = quiz.validate(quiz.defaults() | {"structure": ""})
    assert "Please choose" in empty.errors["structure"]
    long = quiz.validate(
        with_structure(structures.TRICKSTER, trick=quiz.OTHER, custom_trick="x" * 201)
    )
    assert "at most 200" in long.errors["custom_trick"]
    junk = quiz.validate(
        with_structure(structures.RESCUE, rescued=quiz.OTHER, custom_rescued="!!!")
    )
    assert "letters or numbers" in junk.errors["custom_rescued"]
    unknown = quiz.validate(with_structure(structures.SURVIVAL, danger="Aliens"))
    assert "not one of the choices" in unknown.errors["danger"]


def test_old_answers_without_a_structure_are_the_power_fantasy():
    old = {k: v for k, v in quiz.defaults().items() if k != "structure"}
    result = quiz.validate(old)
    assert result.ok and result.answers["structure"] == "Power fantasy"
    assert "element" in result.answers and "rescued" not in result.answers
    assert structures.get(old) is structures.POWER_FANTASY


# ---------------------------------------------------------------- the offline writer

# For each structure: answers to set, and words the story must then contain.
USES = {
    "power_fantasy": ({"power": "Super speed"}, ["super speed"]),
    "rescue": (
        {
            "rescued": quiz.OTHER,
            "custom_rescued": "The old village badger",
            "captor": "A flooded cave",
        },
        ["the old village badger", "a flooded cave"],
    ),
    "friendship": (
        {"friend": "A grumpy old crocodile", "odds": "One of them must soon leave"},
        ["a grumpy old crocodile", "one of them must soon leave"],
    ),
    "survival": (
        {
            "danger": quiz.OTHER,
            "custom_danger": "A volcano waking up",
            "destination": "The far shore of the great lake",
        },
        ["a volcano waking up", "the far shore of the great lake"],
    ),
    "trickster": (
        {"bully": "A bossy bull moose", "trick": "A voice thrown from the shadows"},
        ["a bossy bull moose", "a voice thrown from the shadows"],
    ),
    "redemption": (
        {"rival": "A greedy crow king", "wrong": "Blamed the hero for its own mistake"},
        ["a greedy crow king", "blamed the hero for its own mistake"],
    ),
}


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.key)
def test_offline_story_follows_each_structure_and_uses_the_answers(s):
    over, words = USES[s.key]
    a = answers(s, hero_name="Pip", setting="Coral reef coast", **over)
    st = story.offline_story(a)
    assert [sc.number for sc in st.scenes] == list(range(1, 21))
    assert [sc.beat for sc in st.scenes] == [b.name for b in s.beats]
    assert all("Pip" in sc.text for sc in st.scenes), [
        sc.text for sc in st.scenes if "Pip" not in sc.text
    ]
    assert len({sc.text for sc in st.scenes}) == 20 and not st.missing()
    assert st.answers["structure"] == s.label and "Pip" in st.title
    joined = " ".join(sc.text for sc in st.scenes)
    for w in [*words, "coral reef coast"]:
        assert w in joined, (s.key, w)
    # Deterministic, and the default answers give a different story.
    assert [x.text for x in story.offline_story(a).scenes] == [x.text for x in st.scenes]
    plain = story.offline_story(answers(s, hero_name="Pip"))
    assert [x.text for x in plain.scenes] != [x.text for x in st.scenes]


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.key)
def test_every_branch_combination_writes_a_full_story(s):
    """Each combination of branching answers (free text filled) gives 20 scenes in the structure's beats."""
    branching = {q.key: q.options for q in branching_questions(s) if q.key != "animal"}
    texts = set()
    for combo in itertools.product(*branching.values()):
        a = quiz.validate(
            with_structure(s) | dict(zip(branching, combo, strict=True)) | FILL
        ).answers
        st = story.offline_story(a)
        assert [sc.beat for sc in st.scenes] == [b.name for b in s.beats]
        assert all(sc.text.strip() for sc in st.scenes)
        texts.add(tuple(sc.text for sc in st.scenes))
    assert len(texts) > 1  # the answers change the story


def test_the_structures_write_different_stories_from_the_same_hero():
    stories = [story.offline_story(answers(s, hero_name="Pip")) for s in ALL]
    assert len({tuple(sc.text for sc in st.scenes) for st in stories}) == len(ALL)
    assert len({st.title for st in stories}) == len(ALL)


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.key)
def test_placeholders_rewrites_and_parsing_use_the_structure_beats(s):
    a = answers(s)
    ph = story.placeholder_story(a, "no model")
    assert [sc.beat for sc in ph.scenes] == [b.name for b in s.beats]
    parsed = story.parse_story_json('{"title": "T", "scenes": [{"number": 1, "text": "x"}]}', a)
    assert [sc.beat for sc in parsed.scenes] == [b.name for b in s.beats]
    st = story.offline_story(a)
    new = story.offline_rewrite(st, 7)
    assert new != st.scenes[6].text and s.beat(7).name.lower() in new
    rp = story.rewrite_prompt(st, 7)
    assert f"beat: {s.beat(7).name}: {s.beat(7).goal}" in rp


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.key)
def test_system_prompt_carries_the_structure_beats_and_guidance(s):
    sp = story.system_prompt(answers(s))
    assert s.label in sp and s.guidance in sp
    for n, b in enumerate(s.beats, 1):
        assert f"{n}. {b.name}: {b.goal}" in sp
    others = [o for o in ALL if o is not s]
    assert not any(o.guidance in sp for o in others)


# ---------------------------------------------------------------- prompts and hero forms


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.key)
def test_character_sheet_and_prompts_follow_the_structure(s):
    over, words = USES[s.key]
    a = answers(s, **over)
    sheet = prompts.character_sheet(a)
    assert sheet.startswith("HERO: ") and s.visual_notes in sheet
    assert ("POWERED-UP FORM (scenes 11-20)" in sheet) == (s is structures.POWER_FANTASY)
    if s is not structures.POWER_FANTASY:
        assert "CAST: " in sheet and words[0] in sheet
    st = story.offline_story(a)
    visual = [prompts.visual_prompt(sc) for sc in st.scenes]
    assert all(f"({sc.beat})" in v for sc, v in zip(st.scenes, visual, strict=True))
    full = prompts.standardize_prompts(visual, sheet, a)
    forms = [prompts.prompt_form(p, n) for n, p in enumerate(full, 1)]
    assert forms == [structures.form_for(s, n) for n in range(1, 21)]
    # A prompt shortened after a policy refusal keeps the form through the sheet.
    short = [
        prompts.prompt_form(prompts.sanitize_prompt(p, 2, sheet, sc.text), n)
        for n, (p, sc) in enumerate(zip(full, st.scenes, strict=True), 1)
    ]
    assert short == forms


def job_for(a: dict[str, str]) -> Job:
    st = story.offline_story(a)
    slots = [Slot(i, sc, prompts.visual_prompt(sc)) for i, sc in enumerate(st.scenes)]
    return Job(
        story=st,
        slots=slots,
        owner="o",
        references={"base": "/refs/base.png", "powered": "/refs/powered.png"},
    )


def test_hero_forms_and_reference_choice_follow_the_structure():
    pf = job_for(answers(structures.POWER_FANTASY))
    assert hero.forms_for(pf) == ("base", "powered")
    assert (
        hero.form_label(pf, "powered")
        == hero.FORM_LABEL["powered"]
        == "Powered-up form (scenes 11-20)"
    )
    assert generation._reference_path(pf, 10) == "/refs/base.png"
    assert generation._reference_path(pf, 11) == "/refs/powered.png"
    rescue = job_for(answers(structures.RESCUE))
    assert hero.forms_for(rescue) == ("base",)
    # Even with a stray second image, a structure without a second form uses the base hero.
    assert {generation._reference_path(rescue, n) for n in range(1, 21)} == {"/refs/base.png"}
    assert "before the power awakens" not in hero.reference_prompt(
        "SHEET", "base", second_form=False
    )
    assert "before the power awakens" in hero.reference_prompt("SHEET", "base")


def test_stories_and_jobs_saved_before_structures_still_load():
    old_answers = {k: v for k, v in answers(structures.POWER_FANTASY).items() if k != "structure"}
    job = job_for(old_answers)
    saved = job.to_dict()
    assert "structure" not in saved["story"]["answers"]
    loaded = Job.from_dict(saved)
    assert structures.get(loaded.story.answers) is structures.POWER_FANTASY
    assert hero.forms_for(loaded) == ("base", "powered")
    assert generation._reference_path(loaded, 12) == "/refs/powered.png"
    assert "POWERED-UP FORM (scenes 11-20)" in prompts.character_sheet(loaded.story.answers)
    st = Story.from_dict(saved["story"])
    assert story.offline_story(st.answers).scenes[0].beat == "Underdog setup"
    assert [sc.beat for sc in st.scenes] == [b.name for b in story.BEATS]
