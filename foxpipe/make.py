"""``python -m foxpipe make``: the app's whole flow without a browser, through the same
facade and engine (``foxpipe.app.engine(load_settings())``), so its jobs appear in the
app's History.

quiz answers (JSON) -> story -> prompts and images (offline with no keys, OpenAI with
OPENAI_API_KEY; with --approve-all the hero sheet is approved too) -> approval -> narration
-> the finished Short -> story.mp4, story.srt, narration.wav, story.json and the ZIP in DIR.
Progress goes to stderr; the last stdout line is a JSON summary per story.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_ANSWERS_BYTES = 1024 * 1024
VIDEO_CHOICES = ("slideshow", "kling", "hailuo")


class MakeError(Exception):
    """The story could not be finished; the message is for the user."""


def add_make(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--answers",
        nargs="+",
        required=True,
        metavar="ANSWERS.json",
        help="quiz answers as JSON objects (the quiz's keys; a key left out takes its default); "
        "several files make several stories, one after another",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="where story.mp4, story.srt, story.json and the ZIP go",
    )
    parser.add_argument(
        "--approve-all",
        action="store_true",
        help="approve the hero sheet and every image (else the job waits for review in the app)",
    )
    parser.add_argument(
        "--video",
        choices=VIDEO_CHOICES,
        default="slideshow",
        help="slideshow (local, free) or clips from Kling / Hailuo (their keys needed)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--narration",
        dest="narration",
        action="store_true",
        default=True,
        help="narrate the Short (default)",
    )
    group.add_argument(
        "--no-narration", dest="narration", action="store_false", help="a Short without a voice"
    )
    parser.add_argument(
        "--voice", default="", help="voice name (default: the provider's default voice)"
    )
    parser.add_argument(
        "--style", default="", help="narrator style: storyteller, epic, playful or calm"
    )
    parser.add_argument(
        "--music",
        default=None,
        metavar="FILE",
        help="music (mp3, wav, m4a, ogg, at most 50 MB); 'none' for none; default: the built-in bed",
    )
    parser.add_argument(
        "--length",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the Short's spoken length the script is sized to (default NARRATION_SECONDS, 60)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds each story may take (default 3600)"
    )


def say(msg: str) -> None:
    print(f"foxpipe make: {msg}", file=sys.stderr, flush=True)


@dataclass
class Request:
    path: str
    answers: dict[str, str]
    out: Path


@dataclass
class Outcome:
    answers: str
    out: str
    job_id: str = ""
    ok: bool = False
    files: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def read_answers(path: str) -> tuple[dict[str, str] | None, list[str]]:
    """The validated answers, or the quiz's messages."""
    from foxpipe.domain import quiz

    p = Path(path)
    try:
        if p.stat().st_size > MAX_ANSWERS_BYTES:
            return None, [f"{path}: larger than 1 MB; quiz answers are a small JSON object."]
        raw = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        return None, [f"{path}: cannot be read ({e.strerror or e})."]
    except (UnicodeDecodeError, ValueError) as e:
        return None, [f"{path}: not valid JSON ({str(e)[:120]})."]
    if not isinstance(raw, dict):
        return None, [f"{path}: must hold a JSON object of quiz answers (key: answer)."]
    merged: dict[str, object] = {**quiz.defaults(), **{str(k): v for k, v in raw.items()}}
    known = {q.key for q in quiz.QUESTIONS} | {quiz.st.ANSWER_KEY}
    unknown = sorted(k for k in raw if str(k) not in known)
    result = quiz.validate(merged)
    if not result.ok:
        return None, [f"{path}: {m}" for m in result.errors.values()]
    notes = [f"{path}: unknown key(s) ignored: {', '.join(unknown[:10])}"] if unknown else []
    return result.answers, notes


def _wait(what: str, done: Any, timeout: float, every: float = 0.1, report: Any = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while not done():
        if time.monotonic() > deadline:
            raise MakeError(f"{what} did not finish within {timeout:.0f} s.")
        if report is not None:
            line = report()
            if line and line != last:
                say(line)
                last = line
        time.sleep(every)


def make_one(req: Request, args: argparse.Namespace) -> Outcome:
    from foxpipe import app
    from foxpipe.config import load_settings
    from foxpipe.domain.models import SlotStatus
    from foxpipe.engine import hero, shortjobs, videojobs
    from foxpipe.engine.jobs import GuardError
    from foxpipe.providers.base import ProviderError

    res = Outcome(req.path, str(req.out))
    settings = load_settings()
    reg = app.engine(settings)
    timeout = max(10.0, float(args.timeout))
    t_end = time.monotonic() + timeout

    def left() -> float:
        return max(1.0, t_end - time.monotonic())

    say(f"{req.path}: writing the story ({'OpenAI' if settings.openai_live else 'offline'})…")
    story = app.write_story(settings, req.answers)
    if story.problem:
        res.messages.append(story.problem)
        say(story.problem)
    if story.missing():
        raise MakeError(f"The story has no text for scene(s) {story.missing()}; nothing was made.")
    say(f"“{story.title}”: preparing the prompts and the images…")
    music: str | None = None
    music_note = ""
    if args.music is not None:
        if args.music.strip().lower() == "none":
            music = ""
        else:
            music, music_note = _check_music(args.music)
            if music_note:
                res.messages.append(music_note)
                say(music_note)
    options = shortjobs.ShortOptions(
        narration=args.narration,
        voice=args.voice,
        style=args.style,
        seconds=args.length,
        music=music,
    )
    tid = app.start_approval(settings, story, owner="cli", short=options)
    _wait("Preparing the job", lambda: not (t := app.task(tid)) or not t.running, left())
    t = app.task(tid)
    if t is None or t.status != "done":
        raise MakeError(f"The job could not be made: {t.error if t else 'interrupted'}")
    job_id = t.result.job_id
    res.job_id = job_id
    if t.result.problem:
        res.messages.append(t.result.problem)
    say(f"job {job_id[:8]} (it is in the app's History)")
    if args.voice and args.voice not in shortjobs.voices(reg):
        note = f"There is no voice {args.voice!r} here; using {reg.get(job_id).voice!r}."  # type: ignore[union-attr]
        res.messages.append(note)
        say(note)
    if t.result.sheet_first:
        job = reg.get(job_id)
        assert job is not None
        if not args.approve_all:
            raise MakeError(
                "The hero reference sheet waits for approval: open the job in the app, "
                "or run again with --approve-all."
            )
        for form in hero.forms_for(job):
            say(f"drawing the hero reference sheet ({form})…")
            try:
                hero.make_reference(reg, job_id, form, timeout=left())
            except ProviderError as e:
                raise MakeError(f"The hero sheet could not be drawn: {e.message}") from e
        hero.start_images(reg, job_id)

    def images() -> str:
        p = reg.progress(job_id)
        return f"images {p.done}/{p.total}" if p else ""

    _wait("The images", lambda: (j := reg.get(job_id)) is not None and j.done, left(), 0.2, images)
    job = reg.get(job_id)
    assert job is not None
    failed = [s.index + 1 for s in job.slots if s.status is SlotStatus.FAILED]
    if failed:
        say(f"scene(s) {failed} failed; retrying once…")
        try:
            reg.retry_failed(job_id)
        except GuardError as e:
            raise MakeError(str(e)) from e
        _wait(
            "The images", lambda: (j := reg.get(job_id)) is not None and j.done, left(), 0.2, images
        )
        job = reg.get(job_id)
        assert job is not None
        failed = [s.index + 1 for s in job.slots if s.status is SlotStatus.FAILED]
        if failed:
            raise MakeError(
                f"Scene image(s) {failed} could not be made: "
                f"{next(s.error for s in job.slots if s.status is SlotStatus.FAILED)}"
            )
    if not args.approve_all:
        _write_outputs(req.out, reg.get(job_id) or job, res, video=False)
        say(
            "the images are made and wait for review: open the job in the app (History), "
            "or run with --approve-all to make the video here."
        )
        res.ok = True
        return res
    reg.approve_all(job_id)
    if args.narration:
        _narrate(reg, job_id, res, left)
    provider = args.video
    if provider != "slideshow" and provider not in {p.key for p in videojobs.providers(settings)}:
        raise MakeError(f"--video {provider}: its keys are not set ({provider.upper()} settings).")
    if provider != "slideshow":
        cost = videojobs.estimate(settings, provider, len(job.slots))
        say(f"{provider}: {len(job.slots)} clips, estimated US${cost:.2f} (charged by the vendor)")
    problem = videojobs.start(reg, job_id, provider, None, shortjobs.NO_NARRATION_SECONDS, True)
    if problem:
        raise MakeError(problem)

    def video() -> str:
        j = reg.get(job_id)
        v = j.video if j else None
        return f"video: {v.stage or v.status}" if v else ""

    _wait(
        "The video",
        lambda: (j := reg.get(job_id)) is not None and j.video is not None and not j.video.running,
        left(),
        0.2,
        video,
    )
    job = reg.get(job_id)
    assert job is not None and job.video is not None
    if job.video.status != "done":
        _write_outputs(req.out, job, res, video=False)
        raise MakeError(f"The video could not be made: {job.video.error}")
    if job.video.music_message:
        res.messages.append(job.video.music_message)
    _write_outputs(req.out, job, res, video=True)
    say(f"done: {req.out / 'story.mp4'} ({job.video.duration:.1f} s)")
    res.ok = True
    return res


def _check_music(path: str) -> tuple[str, str]:
    from foxpipe.media import mix

    check = mix.check_music(path)
    if not check.ok:
        return "", check.message
    return str(Path(path).resolve()), ""


def _narrate(reg: Any, job_id: str, res: Outcome, left: Any) -> None:
    from foxpipe.engine import shortjobs

    say("writing the narration…")
    _wait(
        "The narration script",
        lambda: (
            (j := reg.get(job_id)) is not None
            and j.narration_state != "writing"
            and not shortjobs.writing(reg, job_id)
        ),
        left(),
    )
    job = reg.get(job_id)
    if job.narration_error:
        res.messages.append(job.narration_error)
        say(job.narration_error)
    choice = shortjobs.voice(reg)
    say(f"voice: {choice.note}")
    if not choice.free:
        say(f"narration: estimated US${shortjobs.estimate(reg, job):.3f}")

    def spoken() -> str:
        j = reg.get(job_id)
        n = shortjobs.narration_summary(j) if j else {}
        return f"narration {n.get('ready', 0)} spoken, {n.get('failed', 0)} failed" if n else ""

    failed: list[int] = []
    for attempt in (
        1,
        2,
    ):  # failed lines are spoken once more (start_synthesis takes every line not ready)
        if not shortjobs.speaking(reg, job_id):
            problem = shortjobs.start_synthesis(reg, job_id)
            if problem and "already" not in problem:
                raise MakeError(problem)
        time.sleep(0.05)
        _wait("The narration", lambda: not shortjobs.speaking(reg, job_id), left(), 0.2, spoken)
        job = reg.get(job_id)
        failed = [x.index for x in job.narration if str(x.status) == "failed"]
        if not failed:
            return
        if attempt == 1:
            say(f"line(s) {[i + 1 for i in failed]} failed; trying them again…")
    note = (
        f"Narration line(s) {[i + 1 for i in failed]} could not be spoken; those scenes are silent."
    )
    res.messages.append(note)
    say(note)


def _write_outputs(out: Path, job: Any, res: Outcome, *, video: bool) -> None:
    from foxpipe import export
    from foxpipe.engine import videojobs

    out.mkdir(parents=True, exist_ok=True)
    files = videojobs.zip_files(job) if video else {}
    for name, path in files.items():
        if name.startswith("clips/") or not Path(path).is_file():
            continue
        dest = out / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        res.files.append(name)
    (out / "story.json").write_text(
        json.dumps(export.story_json(job), ensure_ascii=False, indent=2), encoding="utf-8"
    )
    res.files.append("story.json")
    data = videojobs.everything_zip(job) if video else export.build_zip(job, only_approved=False)
    (out / "foxpipe.zip").write_bytes(data)
    res.files.append("foxpipe.zip")


def run_make(args: argparse.Namespace) -> int:
    out = Path(args.out)
    reqs: list[Request] = []
    problems: list[str] = []
    several = len(args.answers) > 1
    for n, path in enumerate(args.answers, 1):
        answers, notes = read_answers(path)
        if answers is None:
            problems.extend(notes)
            continue
        for note in notes:
            say(note)
        sub = out / f"{n:02d}-{Path(path).stem[:40]}" if several else out
        reqs.append(Request(path, answers, sub))
    if args.length is not None and not 10 <= args.length <= 600:
        problems.append("--length must be between 10 and 600 seconds.")
    if problems:
        for p in problems:
            print(f"foxpipe make: {p}", file=sys.stderr)
        return EXIT_USAGE
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"foxpipe make: cannot make {out}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    logging.getLogger("foxpipe").setLevel(logging.WARNING)
    from foxpipe import app

    code = EXIT_OK
    try:
        for req in reqs:
            try:
                res = make_one(req, args)
            except MakeError as e:
                say(str(e))
                res = Outcome(req.path, str(req.out), messages=[str(e)])
                code = EXIT_FAILED
            print(json.dumps(res.__dict__, ensure_ascii=False), flush=True)
    finally:
        app.shutdown(grace=0)
    return code
