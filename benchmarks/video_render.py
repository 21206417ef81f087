"""Seconds to render the 20-scene 1080x1920 story video on this machine, and the ratio to
the video's own length. Compares the app's renderer (one ffmpeg filter graph: zoompan +
overlay + xfade) with the alternative (frames drawn by Pillow, piped into one ffmpeg).

With ``--short`` it also renders a narrated 60 s Short (20 scenes, synthetic voice with word
timings, the built-in music bed, captions) at 1080x1920 with foxpipe.media.short: once
from nothing (render speed against real time), then the render after the last approval
(19 segments pre-rendered while images were approved, the last image arriving).

With ``--app`` it runs the real app path offline (``foxpipe.app.engine``, the same engine
as the pages and ``python -m foxpipe make``): a story, its 20 images, the narration written
on approval and spoken by espeak-ng beside the images, 19 images approved one by one
(their segments pre-rendered in the background), then the last approval and "Generate
videos": it prints the seconds from that last approval to the finished 1080x1920 Short.

    python benchmarks/video_render.py [seconds_per_scene] [--skip-pipe] [--skip-slideshow] [--short] [--app]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foxpipe.domain import story  # noqa: E402
from foxpipe.providers import offline, slideshow  # noqa: E402

W, H = 1080, 1920


def make_images(folder: Path) -> list[slideshow.Segment]:
    s = story.offline_story({})
    segs = []
    for sc in s.scenes:
        p = folder / f"scene_{sc.number:02d}.png"
        p.write_bytes(
            offline.render_card(sc.number, sc.beat, sc.text, "1024x1536", sc.number >= 11)
        )
        segs.append(slideshow.Segment(str(p), sc.text, SECONDS))
    return segs


def piped(segs: list[slideshow.Segment], out: Path) -> float:
    """Frames rendered in Python (crop + bilinear resize per frame, blend in the fades,
    caption pasted), piped as raw RGB into one ffmpeg process."""
    fps, fade = slideshow.FPS, slideshow.CROSSFADE
    stills = [slideshow.cover_fit(Image.open(s.path), round(W * 1.1), round(H * 1.1)) for s in segs]
    caps = [slideshow.caption_image(s.text, W, H) for s in segs]
    total = len(segs) * SECONDS + fade
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-y",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{W}x{H}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-preset",
        slideshow.PRESET,
        "-crf",
        str(slideshow.CRF),
        "-pix_fmt",
        "yuv420p",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)

    def frame(i: int, local: float) -> Image.Image:
        im = stills[i]
        p = min(1.0, max(0.0, local / (SECONDS + fade)))
        cw, ch = im.width / (1 + 0.1 * p) / 1.1 * 1.0, im.height / (1 + 0.1 * p) / 1.1
        x, y = (im.width - cw) * p, (im.height - ch) / 2
        fr = im.resize((W, H), Image.Resampling.BILINEAR, box=(x, y, x + cw, y + ch))
        fr.paste(caps[i], (0, H - caps[i].height - round(H * 0.06)), caps[i])
        return fr

    for f in range(round(total * fps)):
        t = f / fps
        i = min(int(t // SECONDS), len(segs) - 1)
        local = t - i * SECONDS
        fr = frame(i, local)
        if i + 1 < len(segs) and local > SECONDS - fade:
            fr = Image.blend(fr, frame(i + 1, local - SECONDS), (local - (SECONDS - fade)) / fade)
        assert proc.stdin is not None
        proc.stdin.write(fr.tobytes())
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait()
    return total


SECONDS = float(next((a for a in sys.argv[1:] if not a.startswith("-")), 4.0))


def _cpu() -> float:
    """CPU seconds used so far by this process and the ffmpeg processes it waited for."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def short_bench(folder: Path) -> None:
    from foxpipe.domain.narration import LineStatus, NarrationLine, Word
    from foxpipe.media import mix
    from foxpipe.media.short import prerender, render_short
    from tests.short_helpers import speech_wav

    s = story.offline_story({})
    pics, lines = [], []
    for sc in s.scenes:
        p = folder / f"short_{sc.number:02d}.png"
        p.write_bytes(
            offline.render_card(sc.number, sc.beat, sc.text, "1024x1536", sc.number >= 11)
        )
        pics.append(p)
        words = sc.text.split()[:7]
        spans = [(0.05 + k * 0.37, 0.05 + k * 0.37 + 0.3) for k in range(len(words))]
        wav = folder / f"line_{sc.number:02d}.wav"
        secs = speech_wav(wav, spans)
        lines.append(
            NarrationLine(
                sc.number - 1,
                " ".join(words),
                LineStatus.READY,
                str(wav),
                duration=secs,
                words=[Word(w, a, b) for w, (a, b) in zip(words, spans, strict=True)],
            )
        )
    beats = [sc.beat for sc in s.scenes]
    music = mix.builtin_track(folder / "bed.wav", 40.0)
    t0, c0 = time.perf_counter(), _cpu()
    full = render_short(pics, lines, folder / "full", (W, H), music=music, beats=beats)
    el, cpu = time.perf_counter() - t0, _cpu() - c0
    print(
        f"narrated Short from nothing: {el:.1f} s for {full.duration:.1f} s of video "
        f"({full.duration / el:.2f}x real time; {cpu:.0f} CPU-s, i.e. {full.duration / (cpu / 2):.2f}x "
        f"on 2 idle cores; load average {os.getloadavg()[0]:.1f}), {full.loudness.integrated:.1f} LUFS, "
        f"{full.loudness.true_peak:.1f} dBTP, {len(full.cues)} caption phrases, "
        f"{full.video.stat().st_size / 1e6:.1f} MB"
    )
    for last in (
        19,
        9,
    ):  # the last scene approved last, or a middle one (two segments depend on it)
        out = folder / f"approve_{last}"
        t0 = time.perf_counter()
        prerender(
            [None if i == last else p for i, p in enumerate(pics)],
            lines,
            out,
            (W, H),
            beats=beats,
            music=music,
            workers=2,
        )
        pre = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), _cpu()
        res = render_short(pics, lines, out, (W, H), music=music, beats=beats)
        el, cpu = time.perf_counter() - t0, _cpu() - c0
        print(
            f"last approval = scene {last + 1}: pre-rendered 19 scenes' segments in {pre:.1f} s beforehand; "
            f"finished video {el:.1f} s after the approval ({res.segments_rendered} segment(s) made, "
            f"{res.segments_reused} reused, {cpu:.1f} CPU-s, load average {os.getloadavg()[0]:.1f})"
        )


def app_bench(folder: Path) -> None:
    """The time from the last approval to the finished Short, through the app's engine."""
    os.environ.update(FOXPIPE_DATA_DIR=str(folder / "data"), FOXPIPE_OFFLINE_DELAY="0.01")
    from foxpipe import app
    from foxpipe.config import load_settings
    from foxpipe.engine import shortjobs, videojobs

    settings = load_settings({})
    reg = app.engine(settings)

    def wait(what: str, ok, limit: float = 900.0) -> None:  # noqa: ANN001
        end = time.monotonic() + limit
        while not ok():
            if time.monotonic() > end:
                raise SystemExit(f"{what} did not finish within {limit:.0f} s")
            time.sleep(0.05)

    try:
        story_ = app.write_story(settings, {"hero_name": "Pip"})
        t0 = time.perf_counter()
        tid = app.start_approval(settings, story_, "benchmark")
        wait("approval", lambda: not app.task(tid).running)
        job_id = app.task(tid).result.job_id
        wait("images", lambda: reg.get(job_id).done)
        wait("narration", lambda: shortjobs.narration_ready(reg.get(job_id)))
        narrated = time.perf_counter() - t0
        for i in range(19):  # the reviewer approves the images one by one
            reg.approve(job_id, [i])
        t1 = time.perf_counter()
        wait("pre-render", lambda: not reg.busy(job_id, shortjobs.PRERENDER_KEY))
        pre = time.perf_counter() - t1
        t0, c0 = time.perf_counter(), _cpu()
        reg.approve(job_id, [19])
        problem = videojobs.start(reg, job_id)
        assert not problem, problem
        wait("video", lambda: not reg.get(job_id).video.running)
        el, cpu = time.perf_counter() - t0, _cpu() - c0
        v = reg.get(job_id).video
        assert v.status == "done", v.error
        print(
            f"app path (offline engine, espeak-ng, built-in music, 1080x1920): images and narration ready "
            f"{narrated:.1f} s after the scenes were approved; 19 approvals pre-rendered in {pre:.1f} s; "
            f"last approval -> finished {v.duration:.1f} s Short in {el:.1f} s "
            f"({cpu:.1f} CPU-s in this process's children; load average {os.getloadavg()[0]:.1f}), "
            f"{v.short.get('loudness_lufs')} LUFS, {v.short.get('true_peak_dbtp')} dBTP, "
            f"{len(v.short.get('captions', []))} caption phrases"
        )
    finally:
        app.shutdown(grace=0)


if __name__ == "__main__" and "--app" in sys.argv:
    with tempfile.TemporaryDirectory() as tmp:
        app_bench(Path(tmp))
    sys.exit(0)

if __name__ == "__main__" and "--skip-slideshow" in sys.argv:
    if "--short" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            short_bench(Path(tmp))
    sys.exit(0)

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        segs = make_images(folder)
        print(
            f"20 scenes, {W}x{H}, {SECONDS:g} s per scene, {slideshow.FPS} fps, preset {slideshow.PRESET}"
        )
        if "--skip-pipe" not in sys.argv:
            t0 = time.perf_counter()
            length = piped(segs, folder / "piped.mp4")
            el = time.perf_counter() - t0
            print(
                f"Pillow frames piped to ffmpeg: {el:.1f} s for {length:.1f} s of video ({length / el:.2f}x real time)"
            )
        t0 = time.perf_counter()
        length = slideshow.render(segs, folder / "story.mp4", (W, H)).duration
        el = time.perf_counter() - t0
        info = slideshow.probe(folder / "story.mp4")
        size = (folder / "story.mp4").stat().st_size / 1e6
        print(
            f"ffmpeg filter graph (the app's renderer): {el:.1f} s for {length:.1f} s of video, "
            f"{info.codec} {info.pix_fmt} {info.width}x{info.height}, {size:.1f} MB"
        )
        print(f"render speed: {length / el:.1f}× real time")
        if "--short" in sys.argv:
            short_bench(folder)
