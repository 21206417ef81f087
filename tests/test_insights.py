"""Insights: the review tables from stored jobs."""

from __future__ import annotations

import math

import pandas as pd

from foxpipe.domain.continuity import Verdict
from foxpipe.domain.models import ImageVersion, Job, Scene, Slot, SlotStatus, Story
from foxpipe.domain.story import BEATS
from foxpipe.insights import ALL, insights, tables


def version(n: int, verdict: Verdict | None = None, auto_fix: bool = False) -> dict:
    v = ImageVersion(
        url=f"u{n}", local_path=f"p{n}", prompt="p", model="m", path="generate"
    ).__dict__.copy()
    if verdict is not None:
        v["verdict"] = verdict.to_dict()
    if auto_fix:
        v["auto_fix"] = True
    return v


def job(title: str, slots: list[dict], first: int = 1) -> dict:
    scenes = [Scene(n, BEATS[n - 1].name, f"scene {n}") for n in range(first, first + len(slots))]
    j = Job(
        story=Story(title=title, scenes=scenes, answers={}),
        owner="o",
        slots=[Slot(index=i, scene=scenes[i], prompt="p") for i in range(len(slots))],
    )
    d = j.to_dict()
    for i, extra in enumerate(slots):
        d["slots"][i].update(extra)
    return d


ON = Verdict(on_model=True, score=90, checker="offline", cost_usd=0.001)
OFF = Verdict(
    on_model=False, score=40, defects=["species", "eyes"], checker="offline", cost_usd=0.001
)
FAILED = Verdict.not_checked("gpt-5.4-mini", "timeout")

A = job(
    "Fox",
    [
        # approved at the first try
        {"status": "approved", "current": 0, "versions": [version(1, ON)]},
        # off model, fixed automatically, the fix approved
        {
            "status": "approved",
            "current": 1,
            "versions": [version(1, OFF), version(2, ON, auto_fix=True)],
        },
        # rejected twice by the reviewer, then approved
        {
            "status": "approved",
            "current": 2,
            "versions": [version(1, ON), version(2, ON), version(3, FAILED)],
            "rejections": [
                {"reasons": ["Hero looks different", "Wrong action"], "note": "ears"},
                {"reasons": ["Hero looks different"], "note": ""},
            ],
        },
        # still ready, never reviewed
        {"status": "ready", "current": 0, "versions": [version(1)]},
    ],
)
B = job(
    "Owl",
    [
        # an automatic fix the reviewer rejected
        {
            "status": "queued",
            "current": 1,
            "versions": [version(1, OFF), version(2, OFF, auto_fix=True)],
            "rejections": [{"reasons": ["Hero looks different"], "note": "still wrong"}],
        },
        {"status": "approved", "current": 0, "versions": [version(1, ON)]},
    ],
    first=15,
)


def row(df: pd.DataFrame, story: str) -> dict:
    sel = df[df["story"].str.startswith(story)]
    assert len(sel) == 1, df
    return sel.iloc[0].to_dict()


def test_first_try_approval():
    ins = insights([A, B])
    assert (
        row(ins.first_try, "Fox")["reviewed"] == 3 and row(ins.first_try, "Fox")["first_try"] == 1
    )
    assert math.isclose(row(ins.first_try, "Fox")["rate"], 0.333)
    assert row(ins.first_try, ALL)["reviewed"] == 5 and row(ins.first_try, ALL)["first_try"] == 2
    assert math.isclose(row(ins.first_try, ALL)["rate"], 0.4)


def test_rejections_by_reason_and_beat():
    ins = insights([A, B])
    r = ins.by_reason
    total = r[r["story"] == ALL].set_index("reason")["rejections"].to_dict()
    assert total == {"Hero looks different": 3, "Wrong action": 1}
    fox = r[r["story"].str.startswith("Fox")].set_index("reason")["rejections"].to_dict()
    assert fox == {"Hero looks different": 2, "Wrong action": 1}
    b = ins.by_beat
    beats = b[b["story"] == ALL].set_index("beat")["rejections"].to_dict()
    assert BEATS[2].name != BEATS[14].name
    assert beats == {BEATS[2].name: 3, BEATS[14].name: 1}


def test_auto_fixes_and_whether_approved():
    ins = insights([A, B])
    f = ins.fixes
    assert len(f) == 2
    fox, owl = row(f, "Fox"), row(f, "Owl")
    assert (fox["score_before"], fox["score_after"], fox["approved"]) == (40, 90, True)
    assert (owl["score_before"], owl["score_after"], owl["approved"]) == (40, 40, False)
    s = row(ins.fix_summary, ALL)
    assert (s["fixes"], s["approved"], s["approved_rate"]) == (2, 1, 0.5)


def test_continuity_scores_per_story():
    ins = insights([A, B])
    fox = row(ins.scores, "Fox")
    assert (
        fox["checked"] == 5
        and fox["off_model"] == 1
        and fox["not_checked"] == 1
        and fox["min_score"] == 40
    )
    assert fox["mean_score"] == 80.0  # 90, 40, 90, 90, 90
    all_ = row(ins.scores, ALL)
    assert (
        all_["checked"] == 8 and all_["off_model"] == 3 and all_["mean_score"] == round(570 / 8, 1)
    )  # Fox 400, Owl 40 + 40 + 90


def test_regeneration_spend():
    ins = insights([A, B], cost_per_image=0.05)
    fox, all_ = row(ins.spend, "Fox"), row(ins.spend, ALL)
    assert (fox["images"], fox["regenerations"], fox["auto_fixes"]) == (7, 3, 1)
    assert math.isclose(fox["regeneration_usd"], 0.15)
    assert math.isclose(
        fox["check_usd"], 0.005
    )  # five checks at $0.001; the failed one cost nothing
    assert (all_["images"], all_["regenerations"], all_["auto_fixes"]) == (10, 4, 2)
    assert math.isclose(all_["regeneration_usd"], 0.2)


def test_empty_and_malformed_input():
    ins = insights([])
    assert len(ins.first_try) == 1 and ins.first_try.iloc[0]["reviewed"] == 0
    assert ins.fixes.empty and ins.by_reason.empty
    t = tables(
        [
            None,
            {"id": "x"},
            {"slots": [None, {"versions": [None, {"verdict": "garbage"}], "rejections": ["?"]}]},
        ]
    )  # type: ignore[list-item]
    assert len(t.slots) == 1 and len(t.versions) == 1 and t.rejections.empty
    assert t.versions.iloc[0]["check_status"] == ""


def test_tables_are_csv_ready():
    ins = insights([A, B])
    for df in (ins.first_try, ins.by_reason, ins.by_beat, ins.fixes, ins.scores, ins.spend):
        text = df.to_csv(index=False)
        assert text.splitlines()[0].startswith("story")
    assert SlotStatus.APPROVED.value == "approved"
