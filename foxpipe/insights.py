"""What the reviews say, from stored jobs: plain functions over ``Job.to_dict()`` shapes that
return pandas DataFrames (the Insights page draws them and offers each as CSV).

Stored fields read besides the Job's own (all optional, older jobs simply lack them):

- ``slot["versions"][i]["verdict"]``: the continuity ``Verdict.to_dict()`` of that image
- ``slot["versions"][i]["auto_fix"]``: True when the image was made by an automatic fix
- ``slot["rejections"]``: the reviewer's rejections, ``[{"reasons": [...], "note": str}]``

Every table has a ``story`` column; the summary tables add an ``All stories`` row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

ALL = "All stories"


def story_label(job: dict[str, Any]) -> str:
    story = job.get("story") or {}
    title = str(story.get("title") or "Untitled").strip() or "Untitled"
    return f"{title} ({str(job.get('id', ''))[:6]})"


def _verdict(version: dict[str, Any]) -> dict[str, Any]:
    v = version.get("verdict")
    return v if isinstance(v, dict) else {}


def _rejections(slot: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in slot.get("rejections") or []:
        if isinstance(r, dict):
            reasons = r.get("reasons") or []
            out.append(
                {
                    "reasons": [str(x) for x in reasons]
                    if isinstance(reasons, list)
                    else [str(reasons)],
                    "note": str(r.get("note") or ""),
                }
            )
    return out


@dataclass
class Tables:
    slots: pd.DataFrame  # one row per slot
    versions: pd.DataFrame  # one row per image made
    rejections: pd.DataFrame  # one row per rejection reason given


SLOT_COLUMNS = [
    "story",
    "job_id",
    "scene",
    "beat",
    "status",
    "versions",
    "regenerations",
    "rejections",
    "approved",
    "first_try",
]
VERSION_COLUMNS = [
    "story",
    "job_id",
    "scene",
    "beat",
    "version",
    "auto_fix",
    "shown",
    "approved",
    "check_status",
    "checked",
    "on_model",
    "score",
    "defects",
    "check_cost_usd",
]
REJECTION_COLUMNS = ["story", "job_id", "scene", "beat", "reason", "note"]


def tables(jobs: Iterable[dict[str, Any]]) -> Tables:
    """The three base tables; malformed jobs or slots are skipped, never raised on."""
    slots, versions, rejections = [], [], []
    for job in jobs:
        if not isinstance(job, dict):
            continue
        label, jid = story_label(job), str(job.get("id", ""))
        for slot in job.get("slots") or []:
            if not isinstance(slot, dict):
                continue
            scene = slot.get("scene") or {}
            number = int(scene.get("number") or int(slot.get("index", 0)) + 1)
            beat = str(scene.get("beat") or "")
            status = str(slot.get("status") or "")
            vs = [v for v in slot.get("versions") or [] if isinstance(v, dict)]
            current = int(slot.get("current", -1) if slot.get("current") is not None else -1)
            rej = _rejections(slot)
            approved = status == "approved"
            slots.append(
                {
                    "story": label,
                    "job_id": jid,
                    "scene": number,
                    "beat": beat,
                    "status": status,
                    "versions": len(vs),
                    "regenerations": max(0, len(vs) - 1),
                    "rejections": len(rej),
                    "approved": approved,
                    "first_try": approved and not rej and current == 0,
                }
            )
            for i, v in enumerate(vs):
                verdict = _verdict(v)
                checked = verdict.get("status") == "checked"
                versions.append(
                    {
                        "story": label,
                        "job_id": jid,
                        "scene": number,
                        "beat": beat,
                        "version": i + 1,
                        "auto_fix": bool(v.get("auto_fix")),
                        "shown": i == current,
                        "approved": approved and i == current,
                        "check_status": str(verdict.get("status") or ""),
                        "checked": checked,
                        "on_model": bool(verdict.get("on_model")) if checked else None,
                        "score": int(verdict["score"])
                        if checked and isinstance(verdict.get("score"), (int, float))
                        else None,
                        "defects": ", ".join(verdict.get("defects") or []) if checked else "",
                        "check_cost_usd": float(verdict.get("cost_usd") or 0.0),
                    }
                )
            for r in rej:
                for reason in r["reasons"] or ["(no reason given)"]:
                    rejections.append(
                        {
                            "story": label,
                            "job_id": jid,
                            "scene": number,
                            "beat": beat,
                            "reason": reason,
                            "note": r["note"],
                        }
                    )
    return Tables(
        pd.DataFrame(slots, columns=SLOT_COLUMNS),
        pd.DataFrame(versions, columns=VERSION_COLUMNS),
        pd.DataFrame(rejections, columns=REJECTION_COLUMNS),
    )


def _with_total(df: pd.DataFrame, total: dict[str, Any]) -> pd.DataFrame:
    return (
        pd.concat([df, pd.DataFrame([total])], ignore_index=True)
        if len(df)
        else pd.DataFrame([total], columns=df.columns)
    )


def first_try_approval(t: Tables) -> pd.DataFrame:
    """Per story: slots reviewed (approved, or rejected at least once), approved at the first
    try (no rejection, the first image), and the rate."""
    s = t.slots
    reviewed = s.loc[(s["approved"].astype(bool) | (s["rejections"] > 0)).to_numpy()]
    g = reviewed.groupby("story", sort=True).agg(
        reviewed=("scene", "size"), first_try=("first_try", "sum")
    )
    g = g.reset_index()
    g["rate"] = (g["first_try"] / g["reviewed"]).round(3)
    n, k = len(reviewed), int(reviewed["first_try"].astype(bool).sum())
    return _with_total(
        g,
        {
            "story": ALL,
            "reviewed": n,
            "first_try": k,
            "rate": round(k / n, 3) if n else float("nan"),
        },
    )


def rejections_by(t: Tables, column: str) -> pd.DataFrame:
    """Rejections counted by ``column`` ("reason" or "beat"), per story and over all stories."""
    r = t.rejections
    per = r.groupby(["story", column], sort=True).size().reset_index(name="rejections")
    total = r.groupby(column, sort=True).size().reset_index(name="rejections")
    total.insert(0, "story", ALL)
    return pd.concat([per, total], ignore_index=True).sort_values(
        ["story", "rejections", column], ascending=[True, False, True], ignore_index=True
    )


def auto_fixes(t: Tables) -> pd.DataFrame:
    """Every automatic fix: the score before (the image it replaced) and after, and whether
    the reviewer approved the fixed image."""
    v = t.versions.sort_values(["job_id", "scene", "version"])
    rows = []
    for (_, _), grp in v.groupby(["job_id", "scene"], sort=False):
        recs = grp.to_dict("records")
        for i, rec in enumerate(recs):
            if rec["auto_fix"]:
                before = recs[i - 1]["score"] if i > 0 else None
                rows.append(
                    {
                        "story": rec["story"],
                        "scene": rec["scene"],
                        "beat": rec["beat"],
                        "version": rec["version"],
                        "score_before": before,
                        "score_after": rec["score"],
                        "approved": rec["approved"],
                    }
                )
    return pd.DataFrame(
        rows,
        columns=["story", "scene", "beat", "version", "score_before", "score_after", "approved"],
    )


def auto_fix_summary(t: Tables) -> pd.DataFrame:
    f = auto_fixes(t)
    g = (
        f.groupby("story", sort=True)
        .agg(fixes=("scene", "size"), approved=("approved", "sum"))
        .reset_index()
    )
    n, k = len(f), int(f["approved"].sum()) if len(f) else 0
    g["approved_rate"] = (g["approved"] / g["fixes"]).round(3)
    return _with_total(
        g,
        {
            "story": ALL,
            "fixes": n,
            "approved": k,
            "approved_rate": round(k / n, 3) if n else float("nan"),
        },
    )


def continuity_scores(t: Tables) -> pd.DataFrame:
    """Per story: images checked, mean and lowest score, off-model images, images whose check failed."""
    v = t.versions
    rows = []
    for story, grp in list(v.groupby("story", sort=True)) + [(ALL, v)]:
        checked = grp.loc[grp["checked"].astype(bool).to_numpy()]
        scores = checked["score"].dropna().astype(float)
        rows.append(
            {
                "story": story,
                "checked": len(checked),
                "mean_score": round(float(scores.mean()), 1) if len(scores) else float("nan"),
                "min_score": int(scores.min()) if len(scores) else None,
                "off_model": int((checked["on_model"] == False).sum()),  # noqa: E712
                "not_checked": int((grp["check_status"] == "not_checked").sum()),
            }
        )
    return pd.DataFrame(
        rows, columns=["story", "checked", "mean_score", "min_score", "off_model", "not_checked"]
    )


def regeneration_spend(t: Tables, cost_per_image: float) -> pd.DataFrame:
    """Per story: images made, regenerations (every image after a slot's first, automatic fixes
    among them), and US$: on regenerations, and on continuity checks."""
    s, v = t.slots, t.versions
    rows = []
    stories = sorted(set(s["story"]))
    for story in [*stories, ALL]:
        ss = s if story == ALL else s[s["story"] == story]
        vv = v if story == ALL else v[v["story"] == story]
        regen = int(ss["regenerations"].sum())
        rows.append(
            {
                "story": story,
                "images": int(ss["versions"].sum()),
                "regenerations": regen,
                "auto_fixes": int(vv["auto_fix"].sum()),
                "regeneration_usd": round(regen * cost_per_image, 4),
                "check_usd": round(float(vv["check_cost_usd"].sum()), 4),
            }
        )
    return pd.DataFrame(
        rows,
        columns=["story", "images", "regenerations", "auto_fixes", "regeneration_usd", "check_usd"],
    )


@dataclass
class Insights:
    first_try: pd.DataFrame
    by_reason: pd.DataFrame
    by_beat: pd.DataFrame
    fixes: pd.DataFrame
    fix_summary: pd.DataFrame
    scores: pd.DataFrame
    spend: pd.DataFrame


def insights(jobs: Iterable[dict[str, Any]], cost_per_image: float = 0.0) -> Insights:
    """Every Insights table from stored jobs (``Job.to_dict()`` dicts)."""
    t = tables(jobs)
    return Insights(
        first_try_approval(t),
        rejections_by(t, "reason"),
        rejections_by(t, "beat"),
        auto_fixes(t),
        auto_fix_summary(t),
        continuity_scores(t),
        regeneration_spend(t, cost_per_image),
    )
