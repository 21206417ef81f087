"""Continuity in the gallery and the Insights page, driven through AppTest (offline, the embedded
check): badges, flagged first, approve anyway, reject with the defects preselected, Check again,
the Insights page's charts and CSV downloads."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from foxpipe import app as workflow
from foxpipe.config import load_settings
from foxpipe.domain.continuity import Verdict
from foxpipe.domain.models import SlotStatus
from tests.apptest import click_approve, settle_checks
from tests.conftest import APP, wait_until

FLAGGED = Verdict(
    on_model=False, score=30, defects=["species"], note="A rabbit, not a fox.", checker="offline"
)


def gallery_with_verdicts(at: AppTest, n: int = 6) -> str:
    """An offline job in the app's registry, every image checked; then scene 2 flagged
    (off model) and scene 4's check failed, as stored verdicts."""
    at.query_params["me"] = "tester-0001"  # the owner's own browser
    at.switch_page("pages/gallery.py").run()  # no gallery yet; this makes the app's registry
    reg = workflow.current()
    settings = load_settings()
    story = workflow.write_story(settings, {})
    story.scenes = story.scenes[:n]
    prepared = workflow.prepare_prompts(settings, story)
    job_id = reg.create_job(
        story,
        prepared.prompts[:n],
        owner="tester-0001",
        character_sheet=prepared.sheet,
        continuity="flag",
    )
    wait_until(
        lambda: (j := reg.get(job_id)) is not None and j.done and not reg.checks_running(job_id),
        timeout=60,
    )
    job = reg.get(job_id)
    assert all(s.image.verdict.get("status") == "checked" for s in job.slots)  # every image checked

    def fn(j):
        for s in j.slots:
            if s.index == 1:
                s.image.verdict = FLAGGED.to_dict()
            elif s.index == 3:
                s.image.verdict = Verdict.not_checked(
                    "offline", "The check timed out after 60 s."
                ).to_dict()
            else:
                s.image.verdict = Verdict(on_model=True, score=91, checker="offline").to_dict()

    reg.mutate(job_id, fn)
    at.query_params["job"] = job_id
    at.run()
    assert not at.exception, at.exception
    return job_id


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def scene_order(at: AppTest) -> list[int]:
    return [
        int(m.value.split("**")[1].split()[1])
        for m in at.markdown
        if m.value.startswith("**Scene ")
    ]


def test_badges_flagged_first_approve_anyway_reject_with_defects_and_check_again():
    at = AppTest.from_file(APP, default_timeout=30)
    job_id = gallery_with_verdicts(at)
    reg = workflow.current()
    text = captions(at)
    assert sum("On model · 91" in c for c in text) == 4
    assert any("Off model · 30: species" in c for c in text)
    assert any("Not checked" in c for c in text)
    assert any("A rabbit, not a fox." in c for c in text)
    # A flagged image is approved "anyway"; others say Approve.
    assert at.button(key=f"ok_{job_id}_1").label == "Approve anyway"
    assert at.button(key=f"ok_{job_id}_0").label == "Approve"
    # Show flagged first: scene 2 leads.
    assert scene_order(at)[:2] == [1, 2]
    at.toggle(key="flagged_first").set_value(True).run()
    assert scene_order(at)[0] == 2 and sorted(scene_order(at)) == [1, 2, 3, 4, 5, 6]
    # Reject the flagged image: the dialog opens with its defects preselected.
    at.button(key=f"rej_{job_id}_1").click().run()
    assert at.multiselect(key=f"why_{job_id}_1").value == ["Hero looks different", "species"]
    at.button(key=f"no_{job_id}_1").click().run()
    assert not at.exception, at.exception
    settle_checks(at)
    wait_until(lambda: reg.get(job_id).done and not reg.checks_running(job_id), timeout=30)
    s = reg.get(job_id).slots[1]
    assert s.rejections and s.rejections[-1]["reasons"] == ["Hero looks different", "species"]
    assert (
        "species of the character sheet" in s.versions[-1].prompt
    )  # the defect's fix reached the prompt
    # Check again on the failed check: the embedded check runs and the badge follows.
    at.run()
    at.button(key=f"recheck_{job_id}_3").click().run()
    settle_checks(at)
    v = Verdict.from_dict(reg.get(job_id).slots[3].image.verdict)
    assert v.checked and v.checker == "offline"
    assert not any(b.key == f"recheck_{job_id}_3" for b in at.button)
    # Approve anyway: the flagged image is approved like any other.
    reg.mutate(job_id, lambda j: setattr(j.slots[5].image, "verdict", FLAGGED.to_dict()))
    at.run()
    at.button(key=f"ok_{job_id}_5").click().run()
    assert reg.get(job_id).slots[5].status is SlotStatus.APPROVED


def test_a_checking_image_shows_it_and_cannot_be_approved():
    at = AppTest.from_file(APP, default_timeout=30)
    job_id = gallery_with_verdicts(at, n=2)
    reg = workflow.current()
    reg.mutate(job_id, lambda j: setattr(j.slots[0], "checking", True))
    at.run()
    assert any("checking against the hero" in c for c in captions(at))
    assert not any(b.key == f"ok_{job_id}_0" for b in at.button)
    assert at.button(key="approve_all").label == "Approve all (1)"
    reg.mutate(job_id, lambda j: setattr(j.slots[0], "checking", False))


def test_insights_page_charts_and_csv_downloads():
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page("pages/insights.py").run()
    assert not at.exception
    assert any("No stories yet" in i.value for i in at.info)
    job_id = gallery_with_verdicts(at, n=3)
    reg = workflow.current()
    reg.reject(job_id, 1, ["Hero looks different", "species"], "fur")
    wait_until(lambda: reg.get(job_id).done and not reg.checks_running(job_id), timeout=30)
    reg.approve_all(job_id)
    at.switch_page("pages/insights.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Insights"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["First-try approval"] == "67%"  # 2 of 3 approved as they first came
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 5
    labels = [b.label for b in at.get("download_button")]
    for name in (
        "first-try approval",
        "rejections by reason",
        "rejections by beat",
        "continuity scores",
        "automatic fixes",
        "regenerations and cost",
    ):
        assert f"Download {name} (CSV)" in labels
    # One story picked: its own rows.
    story = at.selectbox(key="insights_story").options[1]
    at.selectbox(key="insights_story").set_value(story).run()
    assert not at.exception
    frames = at.dataframe
    assert frames and any("species" in set(f.value.get("reason", [])) for f in frames)


def test_scenes_page_choice_is_stored_on_the_job(monkeypatch):
    from tests.test_app_flow import write_story

    monkeypatch.delenv("CONTINUITY")  # the app's own default
    at = AppTest.from_file(APP, default_timeout=30)
    write_story(at)
    assert at.radio(key="continuity_mode").value == "fix"  # CONTINUITY's default
    assert at.slider(key="continuity_threshold").value == 70
    assert any("per story for the checks" in c for c in captions(at))
    at.radio(key="continuity_mode").set_value("flag").run()
    at.slider(key="continuity_threshold").set_value(55).run()
    click_approve(at)
    assert not at.exception, at.exception
    job = workflow.current().get(at.query_params["job"])
    assert job.continuity == "flag" and job.continuity_threshold == 55
