"""The continuity task's entry point: reference per form, fallbacks, decisions, never raising."""

from __future__ import annotations

import asyncio

from foxpipe.config import load_settings
from foxpipe.domain import prompts, structures
from foxpipe.domain.continuity import Verdict
from foxpipe.engine.continuity import check_image, log_fields, story_check_cost
from foxpipe.providers.offline import HeroLook, render_card, render_reference
from foxpipe.providers.vision_offline import OfflineVision
from foxpipe.providers.vision_openai import build_messages

SHEET = prompts.character_sheet({"hero_name": "Rusty"})


class Recorder:
    """A checker that records what it was given and answers a fixed verdict."""

    name = "recorder"
    free = True

    def __init__(
        self, verdict: Verdict | None = None, error: Exception | None = None, hang: bool = False
    ):
        self.verdict = verdict or Verdict(on_model=True, score=95, checker="recorder")
        self.error, self.hang = error, hang
        self.calls: list[tuple[bytes | None, str, bytes, int]] = []
        self.forms: list[str] = []

    async def check(self, reference, reference_text, image, scene_number=0, *, form=""):
        self.calls.append((reference, reference_text, image, scene_number))
        self.forms.append(form)
        if self.hang:
            await asyncio.sleep(10)
        if self.error:
            raise self.error
        return self.verdict


async def test_reference_by_form_and_text_fallback(tmp_path):
    base, powered = tmp_path / "base.png", tmp_path / "powered.png"
    base.write_bytes(b"BASE")
    powered.write_bytes(b"POWERED")
    refs = {"base": str(base), "powered": str(powered)}
    rec = Recorder()
    out = await check_image(rec, b"IMG", 10, references=refs, character_sheet=SHEET)
    assert rec.calls[-1][0] == b"BASE" and out.reference == str(base) and out.decision == "accept"
    out = await check_image(rec, b"IMG", 11, references=refs, character_sheet=SHEET)
    assert rec.calls[-1][0] == b"POWERED" and "POWERED-UP FORM" in rec.calls[-1][1]
    out = await check_image(
        rec, b"IMG", 3, references={"base": str(tmp_path / "gone.png")}, character_sheet=SHEET
    )
    assert (
        rec.calls[-1][0] is None
        and rec.calls[-1][1].startswith("HERO: Rusty")
        and out.reference == "character sheet"
    )


async def test_fix_carries_the_defects_and_only_once():
    bad = Verdict(
        on_model=False, score=30, defects=["outfit or accessory"], note="A green hat appeared."
    )
    out = await check_image(Recorder(bad), b"IMG", 5, character_sheet=SHEET, mode="fix")
    assert (
        out.decision == "fix"
        and "outfit and accessories" in out.fix_feedback
        and "green hat" in out.fix_feedback
    )
    out = await check_image(
        Recorder(bad), b"IMG", 5, character_sheet=SHEET, mode="fix", already_fixed=True
    )
    assert out.decision == "flag" and out.fix_feedback == ""
    out = await check_image(Recorder(bad), b"IMG", 5, character_sheet=SHEET, mode="flag")
    assert out.decision == "flag"
    rec = Recorder(bad)
    out = await check_image(rec, b"IMG", 5, character_sheet=SHEET, mode="off")
    assert out.decision == "accept" and not rec.calls


async def test_failures_never_raise_and_never_block(tmp_path):
    out = await check_image(Recorder(error=RuntimeError("boom")), b"IMG", 2, character_sheet=SHEET)
    assert (
        out.verdict.status == "not_checked"
        and "RuntimeError" in out.verdict.error
        and out.decision == "accept"
    )
    out = await check_image(Recorder(hang=True), b"IMG", 2, character_sheet=SHEET, timeout=0.05)
    assert (
        out.verdict.status == "not_checked"
        and "timed out" in out.verdict.error
        and out.decision == "accept"
    )
    out = await check_image(Recorder(), tmp_path / "missing.png", 2, character_sheet=SHEET)
    assert out.verdict.status == "not_checked" and out.decision == "accept"


async def test_with_the_offline_checker_on_files(tmp_path):
    ref = tmp_path / "hero.png"
    ref.write_bytes(render_reference("512x768"))
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    good.write_bytes(render_card(4, "Discovery", "x", "512x768", False, 2))
    bad.write_bytes(render_card(4, "Discovery", "x", "512x768", False, 2, HeroLook("rabbit")))
    refs = {"base": str(ref)}
    ok = await check_image(OfflineVision(), good, 4, references=refs, character_sheet=SHEET)
    off = await check_image(OfflineVision(), bad, 4, references=refs, character_sheet=SHEET)
    assert ok.decision == "accept" and ok.verdict.on_model
    assert (
        off.decision == "fix" and "species" in off.verdict.defects and "species" in off.fix_feedback
    )


def test_cost_and_log_fields():
    assert story_check_cost(load_settings(env={})) == 0.0
    keyed = load_settings(env={"OPENAI_API_KEY": "sk-test"})
    assert 0 < story_check_cost(keyed) < story_check_cost(keyed, fix_rate=0.5) < 0.2
    assert (
        story_check_cost(load_settings(env={"OPENAI_API_KEY": "sk-test", "CONTINUITY": "off"}))
        == 0.0
    )
    f = log_fields(
        Verdict(on_model=False, score=40, defects=["species", "eyes"], note="n", checker="c")
    )
    assert f["continuity_defects"] == "species; eyes" and f["continuity_score"] == 40
    f = log_fields(Verdict.not_checked("c", "timeout"))
    assert (
        f["continuity_status"] == "not_checked"
        and f["continuity_note"] == "timeout"
        and f["continuity_score"] == ""
    )
    assert set(log_fields(None)) == set(f)


async def test_fix_cycle_against_the_fake_server(fake_openai):
    """Check (OpenAI) -> fix -> the regenerated image's prompt carries the defects -> check again
    -> a second off-model verdict is flagged, not fixed again."""
    from foxpipe.providers.openai import OpenAIImages
    from foxpipe.providers.vision_openai import OpenAIVision
    from tests.fakes.openai_server import Action

    settings = load_settings(
        env={
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": fake_openai.base_url,
            "RETRY_BASE_SECONDS": "0.01",
        }
    )
    checker, images = OpenAIVision(settings), OpenAIImages(settings)
    prompt = prompts.standardize_prompts(["Scene 4. Rusty trains by the river."], SHEET)[0]
    first = await images.generate(prompt, "1024x1536", scene_number=4)
    fake_openai.script(
        "chat",
        Action.verdict(False, 35, ["fur or skin colour", "markings"], "Grey fur, no tail tip."),
        Action.verdict(False, 55, ["markings"], "Still no tail tip."),
    )
    out = await check_image(checker, first.data, 4, character_sheet=SHEET, mode="fix")
    assert out.decision == "fix"
    fixed = await images.generate(
        prompts.with_feedback(prompt, out.fix_feedback), "1024x1536", scene_number=4
    )
    sent = fake_openai.prompts("images")[-1]
    assert "FIX FROM REVIEW:" in sent and "fur or skin colours" in sent and "marking" in sent
    assert "Grey fur, no tail tip." in sent
    again = await check_image(
        checker, fixed.data, 4, character_sheet=SHEET, mode="fix", already_fixed=True
    )
    assert again.decision == "flag" and again.verdict.defects == ["markings"]
    assert len(fake_openai.of("chat")) == 2 and len(fake_openai.of("images")) == 2
    await checker.aclose()
    await images.aclose()


async def test_a_structure_without_a_second_form_checks_every_scene_against_the_hero(tmp_path):
    """A rescue story has one hero form: scene 15 is checked against the hero's sheet and
    text, and the checker is told the ordinary form (not the power fantasy's powered-up one)."""
    base, powered = tmp_path / "base.png", tmp_path / "powered.png"
    base.write_bytes(b"BASE")
    powered.write_bytes(b"POWERED")
    refs = {"base": str(base), "powered": str(powered)}
    rec = Recorder()
    form = structures.form_for({"structure": "rescue"}, 15)
    await check_image(rec, b"IMG", 15, references=refs, character_sheet=SHEET, form=form)
    assert rec.calls[-1][0] == b"BASE" and "POWERED-UP FORM" not in rec.calls[-1][1]
    assert rec.forms[-1] == "base"
    # The OpenAI rubric says so in words.
    text = str(build_messages(None, "HERO: Rusty", "data:,", 15, form))
    assert "ordinary form" in text and "powered-up form." not in text
    assert "powered-up form." in str(build_messages(None, "HERO: Rusty", "data:,", 15))
