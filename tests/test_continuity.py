"""The continuity verdict, the policy and which reference a scene is checked against."""

from __future__ import annotations

import pytest

from foxpipe.config import load_settings
from foxpipe.domain import continuity as c
from foxpipe.domain import prompts
from foxpipe.domain.continuity import DEFECTS, Verdict, decide, fix_text


def test_verdict_round_trip_and_cleaning():
    v = Verdict(
        on_model=False,
        score=140,
        defects=["Species", "made up", "eyes", "species"],
        note="  two\nlines ",
        checker="offline",
    )
    assert v.score == 100 and v.defects == ["species", "eyes"] and v.note == "two lines"
    back = Verdict.from_dict(v.to_dict())
    assert back == v
    assert Verdict.from_dict({"score": -5, "status": "weird", "extra": 1}).score == 0
    assert Verdict.from_dict({"status": "weird"}).status == "not_checked"
    assert Verdict.from_dict(None).status == "not_checked"  # type: ignore[arg-type]
    assert Verdict.from_dict({"defects": "species"}).defects == []


def test_defects_are_the_fixed_list():
    assert DEFECTS == (
        "species",
        "fur or skin colour",
        "markings",
        "eyes",
        "outfit or accessory",
        "size and proportions",
        "wrong form",
    )


BAD = Verdict(on_model=False, score=40, defects=["species"], checker="x")
GOOD = Verdict(on_model=True, score=90, checker="x")
LOW_BUT_ON = Verdict(on_model=True, score=60, checker="x")
FAILED = Verdict.not_checked("x", "timeout")


@pytest.mark.parametrize(
    ("verdict", "mode", "fixed", "expected"),
    [
        (GOOD, "fix", False, "accept"),
        (BAD, "fix", False, "fix"),
        (BAD, "fix", True, "flag"),  # never loops: a fixed image is flagged, not fixed again
        (BAD, "flag", False, "flag"),
        (BAD, "off", False, "accept"),
        (LOW_BUT_ON, "fix", False, "fix"),  # below the threshold
        (FAILED, "fix", False, "accept"),  # a failed check never blocks or fixes
        (FAILED, "flag", False, "accept"),
        (BAD, "nonsense", False, "fix"),  # unknown mode: the default
    ],
)
def test_decide(verdict, mode, fixed, expected):
    assert decide(verdict, mode, 70, fixed) == expected


def test_decide_threshold_and_never_loops():
    v = Verdict(on_model=True, score=75)
    assert decide(v, "fix", 70) == "accept" and decide(v, "fix", 80) == "fix"
    # Simulate the engine: an image is fixed at most once, whatever the next verdicts say.
    fixes, already = 0, False
    for _ in range(5):
        d = decide(BAD, "fix", 70, already)
        if d != "fix":
            break
        fixes += 1
        already = True
    assert fixes == 1 and d == "flag"


def test_fix_text_carries_the_defects():
    text = fix_text(
        ["outfit or accessory", "fur or skin colour", "bogus"],
        "The scarf is red, not blue. Kill it",
    )
    assert (
        c.DEFECT_FIX["fur or skin colour"] in text and c.DEFECT_FIX["outfit or accessory"] in text
    )
    assert text.index("fur or skin") < text.index("outfit")
    assert (
        "Continuity check: The scarf is red, not blue." in text and "Kill" not in text
    )  # sanitized
    assert "Match the hero's reference" in fix_text([])
    assert prompts.with_feedback("P", text).startswith("P\nFIX FROM REVIEW: ")


def test_reference_per_form():
    refs = {"base": "/r/base.png", "powered": "/r/powered.png"}
    assert [c.form_for(n) for n in (1, 10, 11, 20)] == ["base", "base", "powered", "powered"]
    assert (
        c.reference_path(refs, 10) == "/r/base.png"
        and c.reference_path(refs, 11) == "/r/powered.png"
    )
    assert c.reference_path({"base": "/r/base.png"}, 15) == "/r/base.png"
    assert c.reference_path({}, 3) == ""
    sheet = prompts.character_sheet(
        {"hero_name": "Rusty", "species": "Snow Leopard", "element": "ice"}
    )
    base, powered = c.reference_text(sheet, 3), c.reference_text(sheet, 12)
    assert base.startswith("HERO: Rusty") and "POWERED-UP" not in base and "RIVAL" not in base
    assert (
        "POWERED-UP FORM" in powered and "frosty pale-blue" in powered and "SETTING" not in powered
    )
    assert c.reference_text("free text sheet", 4) == "free text sheet"


def test_settings():
    s = load_settings(env={})
    assert (s.continuity, s.continuity_threshold, s.openai_vision_model) == (
        "fix",
        70,
        "gpt-5.4-mini",
    )
    s = load_settings(
        env={"CONTINUITY": "FLAG", "CONTINUITY_THRESHOLD": "85", "VISION_REQUESTS_PER_MINUTE": "30"}
    )
    assert (s.continuity, s.continuity_threshold, s.vision_requests_per_minute) == (
        "flag",
        85,
        30.0,
    )
    s = load_settings(env={"CONTINUITY": "sometimes", "CONTINUITY_THRESHOLD": "300"})
    assert s.continuity == "fix" and s.continuity_threshold == 70
    assert any("CONTINUITY must be" in p for p in s.problems) and any(
        "CONTINUITY_THRESHOLD" in p for p in s.problems
    )


def test_badge_cli_line_and_review_reasons():
    assert GOOD.badge() == "On model · 90"
    assert BAD.badge() == "Off model · 40: species"
    assert FAILED.badge() == "Not checked"
    assert (
        c.review_reasons(BAD) == ["Hero looks different"]
        and "Hero looks different" in prompts.REJECT_REASONS
    )
    assert c.review_reasons(GOOD) == [] and c.review_reasons(FAILED) == []
    line = FAILED.cli_dict("a.png")
    assert line["on_model"] is None and line["score"] is None and line["status"] == "not_checked"
    assert BAD.cli_dict("b.png") == {
        "image": "b.png",
        "on_model": False,
        "score": 40,
        "defects": ["species"],
        "note": "",
    }
