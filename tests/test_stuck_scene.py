"""A scene no prompt can make can still be finished: a failed tile keeps its earlier versions
(approve or restore one) and takes an image of the user's own, so "Approve all" reaches 20/20."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from foxpipe import app, ui, uploads
from foxpipe.config import load_settings
from foxpipe.domain.lifecycle import Refused
from foxpipe.domain.models import SlotStatus
from tests.conftest import APP, wait_until

# The tests that look at scene 3 alone make a job of the story's first 4 scenes (scene 3 and
# one after it), as tests/video_helpers.py does; the "reaches 20" test keeps all 20.
SHORT = 4


def job_with_a_failed_scene(
    copy_gallery,  # noqa: ANN001
    versions: int = 2,
    scenes: int = 20,
) -> tuple[object, str]:
    """The story's first ``scenes`` images ready (all 20 by default; a copy of the finished
    template gallery, tests/prefab.py); scene 3 then regenerated ``versions - 1`` times by the
    engine and failed last."""
    reg = app.engine(load_settings({}))
    job_id = copy_gallery(reg, owner="me", scenes=scenes)
    for _ in range(versions - 1):
        n = len(reg.get(job_id).slots[2].versions)
        reg.reject(job_id, 2, ["off model"], "")
        wait_until(
            lambda n=n: (
                len(reg.get(job_id).slots[2].versions) == n + 1
                and reg.get(job_id).slots[2].status is SlotStatus.READY
                and reg.get(job_id).done  # its check against the hero has ended too
            ),
            timeout=30,
        )

    def blocked(j):  # noqa: ANN001, ANN202  (what a policy-blocked retry leaves)
        j.slots[2].status = SlotStatus.FAILED
        j.slots[2].error = "Blocked by the content policy even with the safest prompt."

    reg.mutate(job_id, blocked)
    return reg, job_id


def gallery(job_id: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["job"] = job_id
    at.switch_page(ui.GALLERY_PAGE)
    at.run()
    at.session_state["confirmed_galleries"] = {job_id}
    return at


def test_a_failed_tile_approves_its_last_image_and_approve_all_reaches_20(clean_env, copy_gallery):
    reg, job_id = job_with_a_failed_scene(copy_gallery)
    at = gallery(job_id)
    at.button(key="approve_all").click().run()
    assert sum(s.status is SlotStatus.APPROVED for s in reg.get(job_id).slots) == 19
    at.button(key=f"ok_failed_{job_id}_2").click().run()
    assert reg.get(job_id).all_approved
    assert any("All images approved" in s.value for s in at.success)


def test_a_failed_tile_restores_an_earlier_version(clean_env, copy_gallery):
    reg, job_id = job_with_a_failed_scene(copy_gallery, versions=2, scenes=SHORT)
    at = gallery(job_id)
    picker = at.selectbox(key=f"ver_{job_id}_2_2")
    picker.set_value(0).run()
    at.button(key=f"use_{job_id}_2").click().run()
    slot = reg.get(job_id).slots[2]
    assert slot.status is SlotStatus.READY and slot.current == 0


def png(size: tuple[int, int] = (64, 96)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


def test_an_own_image_becomes_the_next_version_and_can_be_approved(clean_env, copy_gallery):
    reg, job_id = job_with_a_failed_scene(copy_gallery, versions=1, scenes=SHORT)
    reg.use_own_image(job_id, 2, uploads.validate_upload(png()))
    slot = reg.get(job_id).slots[2]
    assert slot.status is SlotStatus.READY and len(slot.versions) == 2 and slot.current == 1
    assert slot.image.path == "upload"
    assert Image.open(slot.image.local_path).size == (64, 96)
    reg.approve_all(job_id)
    assert reg.get(job_id).all_approved


def test_no_own_image_while_the_scene_is_being_made(clean_env, copy_gallery):
    reg, job_id = job_with_a_failed_scene(copy_gallery, versions=1, scenes=SHORT)
    reg.mutate(job_id, lambda j: setattr(j.slots[2], "status", SlotStatus.GENERATING))
    with pytest.raises(Refused):
        reg.use_own_image(job_id, 2, uploads.validate_upload(png()))


def test_the_same_own_image_sent_twice_is_one_version(clean_env, copy_gallery):
    """A browser may deliver one upload twice (the uploader's change arrives again on the next
    rerun): the scene keeps one copy, and an approval made in between stands."""
    reg, job_id = job_with_a_failed_scene(copy_gallery, versions=1, scenes=SHORT)
    data = uploads.validate_upload(png())
    reg.use_own_image(job_id, 2, data)
    reg.approve(job_id, [2])
    reg.use_own_image(job_id, 2, data)
    slot = reg.get(job_id).slots[2]
    assert len(slot.versions) == 2 and slot.current == 1
    assert slot.status is SlotStatus.APPROVED
    reg.use_own_image(job_id, 2, uploads.validate_upload(png((96, 64))))  # a different file
    assert len(reg.get(job_id).slots[2].versions) == 3
