"""Two reviewers on one gallery (two AppTest sessions on the same engine): an action that
lands after a teammate changed the image is refused and the reviewer is told why."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from foxpipe import app, ui
from foxpipe.config import load_settings
from foxpipe.domain.models import SlotStatus
from tests.conftest import APP, wait_until


def gallery_job(copy_gallery) -> tuple[object, str]:  # noqa: ANN001
    """A finished gallery (a copy of the template, tests/prefab.py) in the app's engine."""
    reg = app.engine(load_settings({}))
    return reg, copy_gallery(reg, owner="team-owner")


def reviewer(job_id: str, reg) -> AppTest:  # noqa: ANN001
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["job"] = job_id
    at.switch_page(ui.GALLERY_PAGE)
    at.run()
    at.session_state["confirmed_galleries"] = {
        job_id
    }  # both are on the team: no ownership question
    return at


def said(at: AppTest) -> str:
    return " ".join(str(w.value) for w in at.warning)


def test_a_reject_dialog_opened_before_a_teammate_approved_changes_nothing(clean_env, copy_gallery):
    reg, job_id = gallery_job(copy_gallery)
    a, b = reviewer(job_id, reg), reviewer(job_id, reg)
    a.button(key=f"rej_{job_id}_0").click().run()  # A opens the Reject dialog on version 1
    assert a.button(key=f"no_{job_id}_0")
    b.button(key=f"ok_{job_id}_0").click().run()  # meanwhile B approves that image
    assert reg.get(job_id).slots[0].status is SlotStatus.APPROVED
    before = reg.get(job_id).slots[0].generations
    a.button(key=f"no_{job_id}_0").click().run()  # A's reject lands late
    slot = reg.get(job_id).slots[0]
    assert (
        slot.status is SlotStatus.APPROVED
        and slot.generations == before
        and len(slot.versions) == 1
    )
    assert "was approved by someone else" in said(a)


def test_a_stale_approve_is_not_approved_and_the_reviewer_is_told(clean_env, copy_gallery):
    reg, job_id = gallery_job(copy_gallery)
    a = reviewer(job_id, reg)  # A sees scene 2, version 1
    reg.reject(job_id, 1, ["off model"], "")  # B rejects it: version 2 is made
    wait_until(
        lambda: (
            reg.get(job_id).slots[1].status is SlotStatus.READY
            and len(reg.get(job_id).slots[1].versions) == 2
        ),
        timeout=30,
    )
    a.button(key=f"ok_{job_id}_1").click().run()  # A approves what they saw: version 1
    assert reg.get(job_id).slots[1].status is SlotStatus.READY  # not approved: it changed
    assert "changed since you looked at it" in said(a)


def test_approve_all_counts_agree_with_one_failed_scene(clean_env, copy_gallery):
    reg, job_id = gallery_job(copy_gallery)

    def fail(j):  # noqa: ANN001, ANN202
        j.slots[4].status = SlotStatus.FAILED
        j.slots[4].error = "Blocked by the content policy even with the safest prompt."

    reg.mutate(job_id, fail)
    a = reviewer(job_id, reg)
    a.button(key="approve_all").click().run()
    header = a.get("progress")[0].proto.text
    captions = " ".join(c.value for c in a.caption)
    assert "19 approved" in header
    assert "19 approved so far" in captions
    assert "0 approved so far" not in captions
