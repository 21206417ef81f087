"""Continuity through the engine: every stored image is checked in the background, its slot held
until the verdict is in; flag, fix (once, through the cost guard), failed checks, Check again.
Against the loopback fake OpenAI server (real SDK) and with the embedded check."""

from __future__ import annotations

import dataclasses
import threading

import pandas as pd
import pytest

from foxpipe.config import load_settings
from foxpipe.domain.continuity import Verdict
from foxpipe.domain.lifecycle import Refused, SlotEvent, can
from foxpipe.domain.models import Job, SlotStatus
from foxpipe.engine import checks
from foxpipe.engine.jobs import JobRegistry
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.offline import render_reference
from tests.conftest import wait_until
from tests.fakes.openai_server import Action
from tests.imagefakes import make_story, prompt_list


@pytest.fixture
def registries():
    made: list[JobRegistry] = []
    yield made
    for reg in made:
        reg.shutdown()


def openai_registry(made, fake, data, **env) -> JobRegistry:
    values = {
        "FOXPIPE_DATA_DIR": str(data),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_USE_REFERENCE": "false",
        "RETRY_BASE_SECONDS": "0.01",
        "VISION_RETRIES": "0",
        "IMAGE_RETRIES": "0",
    }
    values.update({k.upper(): str(v) for k, v in env.items()})
    reg = JobRegistry(load_settings(env=values))
    made.append(reg)
    return reg


def one_scene_job(reg: JobRegistry, tmp_path, **kw) -> str:
    ref = tmp_path / "hero.png"
    ref.write_bytes(render_reference("512x768"))
    story = make_story(1)
    return reg.create_job(
        story, prompt_list(story), owner="me", references={"base": str(ref)}, **kw
    )


def settled(reg: JobRegistry, job_id: str) -> Job:
    wait_until(lambda: reg.get(job_id).done, timeout=30)
    wait_until(lambda: not reg.checks_running(job_id), timeout=30)
    return reg.get(job_id)


def test_vision_request_carries_both_images_and_the_schema_and_is_counted(
    registries, fake_openai, tmp_path, clean_env
):
    fake_openai.script("chat", Action.verdict(True, 92))
    reg = openai_registry(registries, fake_openai, clean_env, continuity="flag")
    job = settled(reg, one_scene_job(reg, tmp_path))
    chat = fake_openai.of("chat")
    assert len(chat) == 1 and len(chat[0].image_urls) == 2
    assert all(u.startswith("data:image/png;base64,") for u in chat[0].image_urls)
    props = chat[0].schema["schema"]["properties"]
    assert {"on_model", "score", "defects", "note"} <= set(props)
    v = job.slots[0].image.verdict
    assert (
        v["status"] == "checked"
        and v["score"] == 92
        and v["checker"] == reg.settings.openai_vision_model
    )
    assert not job.slots[0].checking and job.slots[0].status is SlotStatus.READY
    count, usd = reg.store.spent("checks")
    assert count == 1 and usd > 0
    assert reg.approve(job.id, [0]) == 1


def test_flag_mode_shows_the_verdict_and_makes_nothing_more(
    registries, fake_openai, tmp_path, clean_env
):
    fake_openai.script("chat", Action.verdict(False, 30, ["species"], "A rabbit, not a fox."))
    reg = openai_registry(registries, fake_openai, clean_env, continuity="flag")
    job = settled(reg, one_scene_job(reg, tmp_path))
    s = job.slots[0]
    assert (
        len(s.versions) == 1 and len(fake_openai.of("generations") + fake_openai.of("edits")) == 1
    )
    verdict = Verdict.from_dict(s.image.verdict)
    assert not verdict.on_model and verdict.defects == ["species"]
    assert verdict.badge() == "Off model · 30: species"
    assert can(s, SlotEvent.APPROVE)  # approve a flagged image anyway
    assert reg.approve(job.id, [0]) == 1


def test_fix_regenerates_once_with_the_defects_before_review(
    registries, fake_openai, tmp_path, clean_env
):
    fake_openai.script(
        "chat",
        Action.verdict(False, 35, ["fur or skin colour"], "Grey fur."),
        Action.verdict(True, 90),
    )
    reg = openai_registry(registries, fake_openai, clean_env)  # CONTINUITY defaults to fix
    job_id = one_scene_job(reg, tmp_path)
    seen: list[tuple[int, bool]] = []

    def reviewable() -> bool:
        job = reg.get(job_id)  # one read: the slot and "done" from the same moment
        s = job.slots[0]
        if s.status is SlotStatus.READY and not s.checking:
            seen.append((len(s.versions), s.versions[-1].auto_fix))
        return job.done and s.status is SlotStatus.READY and not reg.checks_running(job_id)

    wait_until(reviewable, timeout=30)
    s = reg.get(job_id).slots[0]
    assert len(s.versions) == 2 and s.current == 1
    assert not s.versions[0].auto_fix and s.versions[1].auto_fix
    assert s.versions[0].verdict["score"] == 35 and s.versions[1].verdict["score"] == 90
    # The reviewer only ever saw the fixed image as ready.
    assert seen and all(n == 2 and fixed for n, fixed in seen)
    sent = fake_openai.prompts("images")
    assert (
        "fur or skin colours" in sent[-1]
        and "Grey fur." in sent[-1]
        and "fur or skin" not in sent[0]
    )
    assert len(fake_openai.of("chat")) == 2
    # The log row of an image is written just after its slot shows it: wait for both rows.
    wait_until(lambda: len(CsvLog(reg.settings.data_path).read("images")) >= 2, timeout=10)
    rows = (reg.settings.data_path / "log_images.csv").read_text()
    logged = pd.read_csv(reg.settings.data_path / "log_images.csv")
    assert list(logged["status"]) == ["ready", "regenerated"]  # one row per image, with its verdict
    assert list(logged["continuity_score"]) == [35, 90] and list(logged["auto_fix"]) == [
        False,
        True,
    ]
    assert logged["continuity_defects"].iloc[0] == "fur or skin colour"
    header = rows.splitlines()[0]
    assert "continuity_score" in header and "continuity_defects" in header and "auto_fix" in header


def test_a_fixed_image_off_model_again_is_flagged_not_fixed_again(
    registries, fake_openai, tmp_path, clean_env
):
    fake_openai.script(
        "chat", Action.verdict(False, 20, ["species"]), Action.verdict(False, 40, ["markings"])
    )
    reg = openai_registry(registries, fake_openai, clean_env)
    job = settled(reg, one_scene_job(reg, tmp_path))
    s = job.slots[0]
    assert len(s.versions) == 2 and s.versions[1].verdict["defects"] == ["markings"]
    assert len(fake_openai.of("chat")) == 2 and s.status is SlotStatus.READY and not s.checking


def test_the_cost_guard_stops_a_fix_and_the_image_is_flagged_with_its_message(
    registries, fake_openai, tmp_path, clean_env
):
    fake_openai.script("chat", Action.verdict(False, 25, ["outfit or accessory"]))
    reg = openai_registry(registries, fake_openai, clean_env, max_images_per_story=1)
    job = settled(reg, one_scene_job(reg, tmp_path))
    s = job.slots[0]
    assert len(s.versions) == 1 and s.status is SlotStatus.READY and not s.checking
    assert "MAX_IMAGES_PER_STORY" in s.error and s.error.startswith(
        "Off model; not fixed automatically"
    )
    assert "outfit" not in s.feedback  # the fix was taken back with the run that never started
    assert len(fake_openai.prompts("images")) == 1
    assert reg.approve(job.id, [0]) == 1


def test_a_failed_check_never_blocks_approval_and_can_run_again(
    registries, fake_openai, tmp_path, clean_env
):
    fake_openai.script("chat", Action.server_error(500))
    reg = openai_registry(registries, fake_openai, clean_env)
    job = settled(reg, one_scene_job(reg, tmp_path))
    s = job.slots[0]
    v = Verdict.from_dict(s.image.verdict)
    assert v.status == "not_checked" and v.badge() == "Not checked" and v.error
    assert len(s.versions) == 1 and not s.checking
    fake_openai.script("chat", Action.verdict(True, 88))
    assert reg.check_again(job.id, 0)
    job = settled(reg, job.id)
    assert job.slots[0].image.verdict["score"] == 88
    assert reg.approve(job.id, [0]) == 1


def test_a_checking_slot_cannot_be_approved_or_rejected(
    registries, fake_openai, tmp_path, clean_env
):
    gate = threading.Event()  # the verdict waits until the test has tried both
    fake_openai.script("chat", dataclasses.replace(Action.verdict(True, 95), gate=gate))
    reg = openai_registry(registries, fake_openai, clean_env)
    job_id = one_scene_job(reg, tmp_path)
    wait_until(lambda: reg.get(job_id).slots[0].checking, timeout=20)
    why: list[str] = []
    assert reg.approve(job_id, [0], refused=why) == 0 and "being checked" in why[0]
    with pytest.raises(Refused, match="being checked"):
        reg.reject(job_id, 0, ["Hero looks different"])
    gate.set()
    job = settled(reg, job_id)
    assert reg.approve(job.id, [0]) == 1


def test_rejections_are_kept_with_their_reasons(registries, fake_openai, tmp_path, clean_env):
    fake_openai.script("chat", Action.verdict(True, 95), Action.verdict(True, 95))
    reg = openai_registry(registries, fake_openai, clean_env)
    job = settled(reg, one_scene_job(reg, tmp_path))
    reg.reject(job.id, 0, ["Hero looks different"], "fur too grey")
    job = settled(reg, job.id)
    r = job.slots[0].rejections
    assert (
        len(r) == 1
        and r[0]["reasons"] == ["Hero looks different"]
        and r[0]["note"] == "fur too grey"
    )
    assert len(job.slots[0].versions) == 2 and not job.slots[0].versions[1].auto_fix


def test_offline_every_image_of_a_story_gets_a_verdict(registries, clean_env):
    reg = JobRegistry(
        load_settings(env={"FOXPIPE_DATA_DIR": str(clean_env), "FOXPIPE_OFFLINE_DELAY": "0.01"})
    )
    registries.append(reg)
    story = make_story(20)
    job = settled(reg, reg.create_job(story, prompt_list(story), owner="me"))
    for s in job.slots:
        assert s.status is SlotStatus.READY and not s.checking
        for v in s.versions:
            assert v.verdict["status"] == "checked" and v.verdict["checker"] == "offline", (
                s.index,
                v.verdict,
            )
        assert len(s.versions) <= 2  # a fix never loops
    assert reg.store.spent("checks")[0] == 0  # the embedded check is free


def test_mode_off_checks_nothing_and_threshold_comes_from_the_job(registries, clean_env):
    reg = JobRegistry(
        load_settings(env={"FOXPIPE_DATA_DIR": str(clean_env), "FOXPIPE_OFFLINE_DELAY": "0.01"})
    )
    registries.append(reg)
    story = make_story(2)
    job = settled(reg, reg.create_job(story, prompt_list(story), owner="me", continuity="off"))
    assert all(not s.image.verdict and not s.checking for s in job.slots)
    job.continuity_threshold = 55
    assert (
        checks.threshold_of(reg.settings, job) == 55 and checks.mode_of(reg.settings, job) == "off"
    )
    job.continuity, job.continuity_threshold = "", -1
    assert (
        checks.threshold_of(reg.settings, job) == 70 and checks.mode_of(reg.settings, job) == "fix"
    )


def test_estimate_counts_checks_and_expected_fixes():
    from tests.imagefakes import make_job

    settings = load_settings(env={"OPENAI_API_KEY": "sk-test"})
    job = make_job(20)
    e = checks.estimate(settings, job, per_image=0.05, per_check=0.0013)
    assert e["checks_usd"] == 0 and e["expected_checks_usd"] == pytest.approx(22 * 0.0013, abs=1e-4)
    assert e["expected_fix_usd"] == pytest.approx(2 * 0.05, abs=1e-4)
    job.continuity = "flag"
    e = checks.estimate(settings, job, per_image=0.05, per_check=0.0013)
    assert e["expected_fix_usd"] == 0 and e["expected_checks_usd"] == pytest.approx(
        20 * 0.0013, abs=1e-4
    )
