"""The Short's timeline (narration + pause, a minimum for silent scenes, frame grid), the
clip fit, and the camera moves by beat."""

from __future__ import annotations

import pytest

from foxpipe.domain.narration import LineStatus, NarrationLine
from foxpipe.domain.story import BEATS
from foxpipe.media import motion
from foxpipe.media.timeline import ClipFit, fit_clips, plan


def _line(
    i: int, seconds: float, status: LineStatus = LineStatus.READY, text: str = "words here"
) -> NarrationLine:
    return NarrationLine(i, text, status, audio_path=f"/x/{i}.wav", duration=seconds)


def test_each_scene_lasts_its_narration_plus_the_pause_and_silent_scenes_the_minimum():
    lines = [_line(0, 3.0), NarrationLine(1, "", LineStatus.EMPTY), _line(2, 1.234)]
    tl = plan(lines, pause=0.4, min_seconds=2.0, fps=30)
    durations = [s.duration for s in tl.scenes]
    assert durations[0] == pytest.approx(3.4, abs=1 / 30)
    assert durations[1] == pytest.approx(2.0, abs=1 / 30)
    assert durations[2] == pytest.approx(1.634, abs=1 / 30)
    assert tl.total == pytest.approx(3.4 + 2.0 + 1.634, abs=1 / 30)
    # frame grid: every boundary is a whole frame, the frames add up to the total
    assert sum(tl.frames(i) for i in range(3)) == round(tl.total * 30)
    for s in tl.scenes:
        assert s.end * 30 == pytest.approx(round(s.end * 30), abs=1e-6)
        assert s.speech_end <= s.end
    assert tl.scenes[1].has_speech is False and tl.scenes[1].speech_end == tl.scenes[1].start
    assert tl.scenes[2].speech == pytest.approx(1.234)


def test_failed_queued_or_missing_lines_make_silent_scenes_and_lines_go_by_index():
    lines = [_line(2, 2.5), _line(0, 1.0, LineStatus.FAILED), _line(1, 1.0, LineStatus.QUEUED)]
    tl = plan(lines, 4, pause=0.5, min_seconds=1.5, fps=25)
    assert [round(s.duration, 2) for s in tl.scenes] == [1.52, 1.52, 3.0, 1.52]
    assert [s.has_speech for s in tl.scenes] == [False, False, True, False]


def test_the_pause_setting_changes_the_length():
    lines = [_line(i, 2.0) for i in range(5)]
    assert plan(lines, pause=1.0).total - plan(lines, pause=0.0).total == pytest.approx(
        5.0, abs=5 / 30
    )


def test_a_clip_covers_the_narration_and_a_still_holds_where_it_is_short():
    fits = fit_clips([5.0, 3.0, 4.0, 2.0], [10.0, 2.5, None, 0.0])
    assert fits[0] == ClipFit(5.0, 0.0)  # trimmed to the scene
    assert fits[1] == ClipFit(2.5, pytest.approx(0.5))  # played whole, then held
    assert fits[2] is None and fits[3] is None  # stills


def test_every_beat_of_the_story_has_a_move_and_the_moves_follow_the_story():
    moods = {b.name: motion.mood_for(b.name) for b in BEATS}
    assert moods["Underdog setup"] == "calm"
    assert moods["Power display"] == "energetic"
    assert moods["Triumph"] == "triumph"
    assert len(set(moods.values())) >= 6  # not one pattern for every scene
    setup, power, triumph = (
        motion.motion_for(n) for n in ("Underdog setup", "Power display", "Triumph")
    )
    assert setup.zoom_end > setup.zoom_start and setup.shake == 0  # slow push-in
    assert power.zoom_end - power.zoom_start > setup.zoom_end - setup.zoom_start and power.shake > 0
    assert triumph.zoom_start > triumph.zoom_end  # pull-back reveal


def test_other_structures_fall_back_to_a_mood_and_clip_prompts_get_the_same_grammar():
    assert motion.mood_for("The Final Battle") == "energetic"
    assert motion.mood_for("Epilogue: victory lap") == "triumph"
    assert motion.motion_for("Zzz unknown") is motion.FALLBACK
    assert motion.motion_for("") is motion.FALLBACK
    assert "shake" in motion.clip_prompt_hint("Power display")
    assert "pull-back" in motion.clip_prompt_hint("Triumph")
    assert motion.clip_prompt_hint("anything at all")


def test_zoompan_expressions_start_where_the_previous_segment_left_off():
    m = motion.motion_for("Power display")
    z, x, y = m.expressions(100, offset=90)
    assert "(on+90)" in z and "sin((on+90)" in x and "/99" in z
