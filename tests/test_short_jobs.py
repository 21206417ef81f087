"""The finished Short's engine wiring (foxpipe.engine.shortjobs) on a real JobRegistry,
offline: a paid voice goes through the cost guard, a failing line is kept failed with
Retry while the others are kept, edits and music uploads, clip prompts with the beat's
camera grammar, and segments pre-rendered as images are approved."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import struct
import threading
import time
from pathlib import Path

import pytest

from foxpipe import app as workflow
from foxpipe.config import load_settings
from foxpipe.domain.narration import LineStatus, SpeechResult
from foxpipe.engine import shortjobs, videojobs
from foxpipe.engine.jobs import JobRegistry
from foxpipe.media.motion import clip_prompt_hint
from foxpipe.providers.base import ProviderError
from foxpipe.providers.voice import VoiceChoice, pcm16_wav
from tests.conftest import wait_until


@functools.cache  # pure Python per sample: made once per length, the bytes are immutable
def tone(seconds: float = 0.6, rate: int = 24000) -> bytes:
    n = int(seconds * rate)
    pcm = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(n)
    )
    return pcm16_wav(pcm, rate)


class PaidVoice:
    """A voice that charges: fails every line containing "boom" until healed."""

    name = "paid-test"
    voices = ["a", "b"]

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.broken = True

    def cost_estimate(self, text: str) -> float:
        return 0.001 * len(text.split())

    async def synthesize(self, text: str, voice: str, style: str) -> SpeechResult:
        self.calls.append(text)
        if self.broken and "boom" in text.lower():
            raise ProviderError("The voice refused this line.", "fatal")
        return SpeechResult(wav=tone(), transcript=text)


@pytest.fixture
def reg(tmp_path, monkeypatch):
    monkeypatch.setenv("SHORT_SIZE", "180x320")
    monkeypatch.setenv("SHORT_FPS", "8")
    monkeypatch.setenv("NARRATION_AUTO", "false")
    monkeypatch.setenv("SHORT_PRERENDER", "true")  # the product's default (tests turn it off)
    settings = load_settings({"DAILY_NARRATION_BUDGET": "25"})
    r = JobRegistry(settings)
    yield r
    r.shutdown()
    r.store.close()


def new_job(reg: JobRegistry) -> str:
    story = workflow.write_story(reg.settings, {"hero_name": "Pip"})
    prepared = workflow.prepare_prompts(reg.settings, story)
    job_id = reg.create_job(
        story, prepared.prompts, owner="t", character_sheet=prepared.sheet, start=False
    )
    return job_id


def test_paid_voice_is_charged_and_a_failed_line_keeps_the_others(reg):
    voice = PaidVoice()
    shortjobs._voices[reg] = VoiceChoice(voice, "realtime", False, False, "a", "paid")
    job_id = new_job(reg)
    shortjobs.begin(reg, job_id, shortjobs.ShortOptions(voice="b", style="epic", seconds=40))
    wait_until(lambda: reg.get(job_id).narration_state == "written", timeout=20)
    job = reg.get(job_id)
    assert (job.voice, job.narration_style, job.short_seconds) == ("b", "epic", 40.0)
    assert not voice.calls, "a paid voice waits for the go-ahead"
    shortjobs.set_line(reg, job_id, 4, "Then BOOM, the thunder **rolls**!\u202e")
    assert reg.get(job_id).narration[4].text == "Then BOOM, the thunder rolls!"
    spoken = [x for x in reg.get(job_id).narration if x.text]
    usd = shortjobs.estimate(reg, reg.get(job_id))
    assert usd == pytest.approx(sum(0.001 * len(x.text.split()) for x in spoken))
    assert shortjobs.start_synthesis(reg, job_id) == ""
    wait_until(lambda: not shortjobs.speaking(reg, job_id), timeout=30)
    count, spent = reg.store.spent("narration")
    assert count == len(spoken) and spent == pytest.approx(usd)
    job = reg.get(job_id)
    assert job.narration[4].status is LineStatus.FAILED and "refused" in job.narration[4].error
    assert all(
        x.status is LineStatus.READY and Path(x.audio_path).is_file()
        for x in job.narration
        if x.index != 4 and x.text
    )
    # Retry the failed line alone: charged once more, the others untouched.
    voice.broken = False
    before = len(voice.calls)
    assert shortjobs.retry_line(reg, job_id, 4) == ""
    wait_until(lambda: not shortjobs.speaking(reg, job_id), timeout=30)
    assert (
        len(voice.calls) == before + 1 and reg.get(job_id).narration[4].status is LineStatus.READY
    )
    assert reg.store.spent("narration")[0] == count + 1
    # The day's budget (25 lines) is spent: a clear message, nothing spoken.
    calls = len(voice.calls)
    message = shortjobs.start_synthesis(reg, job_id, [x.index for x in spoken])
    assert "narration budget is spent" in message and len(voice.calls) == calls


class HeldVoice(PaidVoice):
    """A paid voice that speaks nothing until the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False
        self.gate = threading.Event()

    async def synthesize(self, text: str, voice: str, style: str) -> SpeechResult:
        await asyncio.to_thread(self.gate.wait, 30)
        return await super().synthesize(text, voice, style)


def test_two_speak_requests_at_once_start_one_run_and_pay_once(reg, monkeypatch):
    voice = HeldVoice()
    shortjobs._voices[reg] = VoiceChoice(voice, "realtime", False, False, "a", "paid")
    job_id = new_job(reg)
    shortjobs.begin(reg, job_id, shortjobs.ShortOptions(seconds=40))
    wait_until(lambda: reg.get(job_id).narration_state == "written", timeout=20)
    spoken = [x for x in reg.get(job_id).narration if x.text]
    real_charge = reg.charge

    def slow_charge(*args, **kwargs):  # both requests look before either has started
        time.sleep(0.3)
        return real_charge(*args, **kwargs)

    monkeypatch.setattr(reg, "charge", slow_charge)
    answers: list[str] = []
    two = [
        threading.Thread(target=lambda: answers.append(shortjobs.start_synthesis(reg, job_id)))
        for _ in range(2)
    ]
    for t in two:
        t.start()
    for t in two:
        t.join(20)
    assert sorted(answers) == ["", "The narration is already being spoken."]
    # A line's Retry while every line is being spoken is told so: it would pay the line twice.
    busy = shortjobs.retry_line(reg, job_id, spoken[0].index)
    assert busy == "The narration is already being spoken."
    voice.gate.set()
    wait_until(lambda: not shortjobs.speaking(reg, job_id), timeout=30)
    assert reg.store.spent("narration")[0] == len(spoken)  # paid once
    assert sorted(voice.calls) == sorted(x.text for x in spoken)  # each line spoken once
    assert all(x.status is LineStatus.READY for x in reg.get(job_id).narration if x.text)


def test_speaking_refused_by_a_stopping_engine_counts_nothing_and_keeps_the_lines(reg):
    shortjobs._voices[reg] = VoiceChoice(PaidVoice(), "realtime", False, False, "a", "paid")
    job_id = new_job(reg)
    shortjobs.begin(reg, job_id, shortjobs.ShortOptions(seconds=40))
    wait_until(lambda: reg.get(job_id).narration_state == "written", timeout=20)
    before = reg.get(job_id).narration
    reg.shutdown()  # the app is stopping: no new work starts
    message = shortjobs.start_synthesis(reg, job_id)
    assert "could not be started" in message and "shutting down" in message
    assert reg.store.spent("narration")[0] == 0  # what was counted is given back
    assert reg.get(job_id).narration == before  # no line left "synthesizing"


def test_music_uploads_are_checked(reg, tmp_path):
    job_id = new_job(reg)
    shortjobs.begin(reg, job_id, shortjobs.ShortOptions(narration=False))
    assert reg.get(job_id).music_path == "builtin"  # SHORT_MUSIC's default
    msg = shortjobs.set_music(reg, job_id, "upload", "../../etc/song.mp3", b"just text, not audio")
    assert "song.mp3 is not an audio file" in msg and reg.get(job_id).music_path == ""
    big = shortjobs.set_music(reg, job_id, "upload", "big.wav", b"\0" * (50 * 1024 * 1024 + 1))
    assert "at most 50 MB" in big
    assert shortjobs.set_music(reg, job_id, "upload", "tone.wav", tone(2.0)) == ""
    job = reg.get(job_id)
    assert job.music_name == "tone.wav" and Path(job.music_path).is_file()
    assert (
        Path(job.music_path).parent.name == "music"
    )  # the name was made safe, inside the job's folder


def test_clip_prompts_follow_the_beat(reg):
    job = reg.get(new_job(reg))
    for i in (0, 12, 19):
        hint = clip_prompt_hint(job.slots[i].scene.beat)
        assert hint and hint in videojobs.clip_prompt(job, i)
    assert clip_prompt_hint(job.slots[0].scene.beat) != clip_prompt_hint(job.slots[19].scene.beat)


def test_segments_are_prerendered_as_images_are_approved(reg):
    voice = PaidVoice()
    voice.broken = False
    shortjobs._voices[reg] = VoiceChoice(voice, "speech", True, False, "a", "free test voice")
    job_id = new_job(reg)
    shortjobs.begin(reg, job_id, shortjobs.ShortOptions(music=""))
    wait_until(lambda: reg.get(job_id).narration_state == "written", timeout=20)
    assert shortjobs.start_synthesis(reg, job_id) == ""
    reg.schedule(job_id, list(range(20)))
    wait_until(
        lambda: reg.get(job_id).done and shortjobs.narration_ready(reg.get(job_id)), timeout=60
    )
    segs = shortjobs.short_dir(reg, job_id) / "segments"
    reg.approve(job_id, list(range(19)))
    wait_until(lambda: not reg.busy(job_id, shortjobs.PRERENDER_KEY), timeout=120)
    made = sorted(p.name[:6] for p in segs.glob("seg_*.mp4"))
    assert made == [f"seg_{i:02d}" for i in range(19)]  # every segment whose image is final
    reg.approve(job_id, [19])
    assert videojobs.start(reg, job_id) == ""
    wait_until(lambda: not reg.get(job_id).video.running, timeout=120)
    v = reg.get(job_id).video
    assert v.status == "done", v.error
    assert (
        v.narrated
        and not v.music_used
        and len(v.scene_audio) == sum(1 for x in reg.get(job_id).narration if x.text)
    )
    assert abs(v.duration - v.short["scenes"][-1]["end"]) < 0.01


def test_an_approval_while_the_last_pre_render_pass_is_ending_is_rendered(reg):
    job_id = new_job(reg)
    shortjobs.begin(reg, job_id, shortjobs.ShortOptions(narration=False, music=""))
    reg.schedule(job_id, list(range(20)))
    wait_until(lambda: reg.get(job_id).done, timeout=60)
    ending = threading.Event()

    async def last_pass_ending() -> None:  # a pass that has looked for marks the last time
        await asyncio.to_thread(ending.wait, 30)

    assert reg.submit(job_id, shortjobs.PRERENDER_KEY, last_pass_ending)
    reg.approve(job_id, [0, 1, 2])
    ending.set()
    wait_until(lambda: not reg.busy(job_id, shortjobs.PRERENDER_KEY), timeout=120)
    segs = shortjobs.short_dir(reg, job_id) / "segments"
    made = sorted(p.name[:6] for p in segs.glob("seg_*.mp4"))
    assert made == ["seg_00", "seg_01", "seg_02"]  # rendered by a pass after the ending one


def test_without_prerender_approvals_render_nothing_and_the_video_is_made_whole(tmp_path):
    settings = load_settings(
        {"SHORT_PRERENDER": "false", "SHORT_SIZE": "180x320", "SHORT_FPS": "8"}
    )
    r = JobRegistry(dataclasses.replace(settings, data_dir=str(tmp_path / "np-data")))
    try:
        job_id = new_job(r)
        shortjobs.begin(r, job_id, shortjobs.ShortOptions(narration=False, music=""))
        r.schedule(job_id, list(range(20)))
        wait_until(lambda: r.get(job_id).done, timeout=60)
        r.approve(job_id, list(range(20)))
        assert not r.busy(job_id, shortjobs.PRERENDER_KEY)
        segs = shortjobs.short_dir(r, job_id) / "segments"
        assert not list(segs.glob("seg_*.mp4"))  # nothing rendered on approval
        assert videojobs.start(r, job_id) == ""
        wait_until(lambda: not r.get(job_id).video.running, timeout=120)
        v = r.get(job_id).video
        assert v.status == "done", v.error
        assert len(list(segs.glob("seg_*.mp4"))) == 20  # rendered whole when asked for
    finally:
        r.shutdown()
        r.store.close()


def test_with_an_openai_key_the_narration_uses_the_realtime_api(tmp_path):
    """The engine's synthesis through RealtimeVoice and the real SDK against the loopback
    Realtime fake: paid (estimate shown, charged), a line the voice rewords twice is kept
    and flagged, in story.json too."""
    from foxpipe import export
    from foxpipe.domain.narration import offline_script
    from tests.fakes.realtime_server import FakeRealtime, RtAction

    story = workflow.write_story(load_settings({}), {"hero_name": "Pip"})  # offline writer
    with FakeRealtime(api_key="sk-test") as fake:
        settings = load_settings(
            {},
            {
                "OPENAI_API_KEY": "sk-test",
                "OPENAI_BASE_URL": fake.base_url,
                "FOXPIPE_DATA_DIR": str(tmp_path / "rt-data"),
                "MAX_CONCURRENT_VOICE": "1",
                "VOICE_TIMEOUT": "10",
                "NARRATION_AUTO": "false",
            },
        )
        reg = JobRegistry(settings)
        try:
            job_id = reg.create_job(story, ["p"] * 20, owner="t", start=False)
            shortjobs.begin(reg, job_id, shortjobs.ShortOptions(narration=False, voice="cedar"))
            choice = shortjobs.voice(reg)
            assert (
                choice.kind == "realtime"
                and not choice.free
                and "gpt-realtime-2.1-mini" in choice.note
            )
            texts = offline_script(story, 60.0)
            reg.mutate(
                job_id,
                lambda j: setattr(
                    j, "narration", [shortjobs._new_line(i, t) for i, t in enumerate(texts)]
                ),
            )
            usd = shortjobs.estimate(reg, reg.get(job_id))
            assert 0 < usd < 0.1
            fake.script(
                RtAction.reword("Something else entirely."),
                RtAction.reword("Still something else."),
            )
            assert shortjobs.start_synthesis(reg, job_id) == ""
            wait_until(lambda: not shortjobs.speaking(reg, job_id), timeout=90)
            job = reg.get(job_id)
            first = next(x for x in job.narration if x.text)
            assert (
                first.reworded
                and first.status is LineStatus.READY
                and first.transcript == "Still something else."
            )
            rest = [x for x in job.narration if x.text and x.index != first.index]
            assert all(x.status is LineStatus.READY and not x.reworded for x in rest)
            assert reg.store.spent("narration")[0] == len(rest) + 1
            sessions = [c for c in fake.connections if c.of("session.update")]
            assert {
                c.of("session.update")[0]["session"]["audio"]["output"]["voice"] for c in sessions
            } == {"cedar"}
            meta = export.story_json(job)["short"]
            assert meta["narration"][first.index]["reworded"] is True
        finally:
            reg.shutdown()
            reg.store.close()
