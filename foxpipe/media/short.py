"""The finished Short: the stills (or clips) on the narration's timeline with a camera move
per beat, crossfades, captions timed to the voice, music ducked under the narration, and
a loudness-normalized mix.

The video is built from one H.264 segment per scene, cached on disk under a key of
everything that shapes it (image, neighbour for the crossfade, length, move, captions).
Segments can be rendered as soon as a scene's image and narration are final
(:func:`prerender`), so the render after the last approval only makes the missing
segments, the audio, and joins everything with a stream copy (:func:`render_short`).

Each segment starts with the crossfade from the previous scene: the previous still keeps
its move for the fade's frames, so joining segments needs no re-encode.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio_ffmpeg
from PIL import Image

from foxpipe.domain.narration import LineStatus, NarrationLine
from foxpipe.media import captions as cap
from foxpipe.media import mix
from foxpipe.media.motion import Motion, motion_for
from foxpipe.media.timeline import (
    NARRATION_PAUSE_SECONDS,
    SCENE_MIN_SECONDS,
    Timeline,
    fit_clips,
    plan,
)
from foxpipe.providers.slideshow import (
    CROSSFADE,
    RenderError,
    fit_file,
    probe,
    run_ffmpeg,
    zoompan_filter,
)

log = logging.getLogger(__name__)

PRESET = "superfast"  # x264 is most of the render; a third less CPU than veryfast
CRF = 21
AUDIO_BITRATE = "192k"
CLIP_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".m4v")
VERSION = 1  # bump when the segment recipe changes: old cached segments are not reused
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts")
MISSING_COLOR = (16, 16, 24)

Progress = Callable[[float], None]


@dataclass
class ShortResult:
    video: Path  # story.mp4: H.264 + AAC, +faststart
    srt: Path  # story.srt: the caption phrases with the voice's timings
    narration: Path  # narration.wav: the whole narration on the video's clock
    scene_audio: list[Path]  # narration/scene_NN.wav, one per scene that speaks
    duration: float
    timeline: Timeline
    cues: list[cap.Cue]
    loudness: mix.Loudness
    music_used: bool = False
    music_message: str = ""  # why the music was left out, for the user
    segments_rendered: int = 0
    segments_reused: int = 0
    seconds: float = 0.0  # wall time of the render

    def to_dict(self) -> dict[str, Any]:
        """For story.json: files by name, the scenes' spans and the captions."""
        return {
            "video": self.video.name,
            "srt": self.srt.name,
            "narration": self.narration.name,
            "scene_audio": [str(p.relative_to(self.video.parent)) for p in self.scene_audio],
            "duration": round(self.duration, 3),
            "scenes": [
                {
                    "index": s.index,
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "speech_end": round(s.speech_end, 3),
                }
                for s in self.timeline.scenes
            ],
            "captions": [
                {
                    "start": round(c.start, 3),
                    "end": round(c.end, 3),
                    "text": c.text,
                    "scene": c.scene,
                }
                for c in self.cues
            ],
            "loudness_lufs": self.loudness.integrated,
            "true_peak_dbtp": self.loudness.true_peak,
            "music": self.music_used,
            "music_message": self.music_message,
        }


# ---------------------------------------------------------------- the segment plan
@dataclass
class _Spec:
    index: int
    frames: int
    head: int  # crossfade frames from the previous scene at the start
    tail: int  # frames the move continues into the next scene's crossfade
    source: str  # still image or clip path ("" = missing image)
    clip: bool
    motion: Motion
    prev_source: str = ""
    prev_frames: int = 0
    prev_motion: Motion | None = None
    clip_play: float = 0.0
    ass: str = ""
    key: str = ""
    ready: bool = True
    path: Path = field(default_factory=Path)


def _file_id(path: str) -> list[Any]:
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return [path, 0, 0]
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


def _is_clip(path: str) -> bool:
    return Path(path).suffix.lower() in CLIP_SUFFIXES


def _final(line: NarrationLine | None) -> bool:
    """The line will not change the timeline any more (ready, or nothing to say)."""
    return (
        line is None or not line.text.strip() or line.status in (LineStatus.READY, LineStatus.EMPTY)
    )


def _plan(
    images: Sequence[str | Path | None],
    lines: Sequence[NarrationLine | None],
    size: tuple[int, int],
    *,
    fps: int,
    captions: bool,
    beats: Sequence[str] | None,
    pause: float,
    min_seconds: float,
    fade: float,
    seg_dir: Path,
    silent_text: Sequence[str] | None = None,
) -> tuple[Timeline, list[cap.Cue], list[_Spec]]:
    n = len(images)
    timeline = plan(lines, n, pause=pause, min_seconds=min_seconds, fps=fps)
    cues = cap.build_cues(timeline, lines, silent_text)
    by_index = {ln.index: ln for ln in lines if ln is not None}
    sources = [str(Path(p).resolve()) if p and Path(p).is_file() else "" for p in images]
    frames = [timeline.frames(i) for i in range(n)]
    clip_len: list[float | None] = []
    for s in sources:
        if s and _is_clip(s):
            try:
                clip_len.append(probe(s).duration)
            except RenderError:
                clip_len.append(None)
        else:
            clip_len.append(None)
    fits = fit_clips([f / fps for f in frames], clip_len)
    moves = [motion_for(beats[i] if beats and i < len(beats) else "") for i in range(n)]
    heads = []
    for i in range(n):
        if i == 0 or fits[i - 1] is not None:
            heads.append(0)  # the first scene, or a clip before: a cut
        else:
            heads.append(max(0, min(round(fade * fps), frames[i] // 3, frames[i - 1] // 3)))
    specs: list[_Spec] = []
    for i in range(n):
        tail = heads[i + 1] if i + 1 < n else 0
        spec = _Spec(
            index=i,
            frames=frames[i],
            head=heads[i],
            tail=tail,
            source=sources[i],
            clip=fits[i] is not None,
            motion=moves[i],
            clip_play=fits[i].play if fits[i] is not None else 0.0,  # type: ignore[union-attr]
        )
        if heads[i]:
            spec.prev_source, spec.prev_frames, spec.prev_motion = (
                sources[i - 1],
                frames[i - 1],
                moves[i - 1],
            )
        if captions:
            span = timeline.scenes[i]
            spec.ass = cap.ass_text([c for c in cues if c.scene == i], size, offset=span.start)
        spec.ready = (
            bool(images[i])
            and (i == 0 or not heads[i] or bool(images[i - 1]))
            and _final(by_index.get(i))
            and (i == 0 or _final(by_index.get(i - 1)))
        )
        recipe = {
            "v": VERSION,
            "size": list(size),
            "fps": fps,
            "frames": spec.frames,
            "head": spec.head,
            "tail": spec.tail,
            "src": _file_id(spec.source) if spec.source else None,
            "clip": spec.clip,
            "play": round(spec.clip_play, 3),
            "motion": spec.motion.expressions(spec.frames + spec.tail),
            "prev": _file_id(spec.prev_source) if spec.prev_source else None,
            "prev_motion": spec.prev_motion.expressions(
                spec.prev_frames + spec.head, spec.prev_frames
            )
            if spec.prev_motion
            else None,
            "ass": spec.ass,
            "enc": [PRESET, CRF],
        }
        spec.key = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
        spec.path = seg_dir / f"seg_{i:02d}_{spec.key}.mp4"
        specs.append(spec)
    return timeline, cues, specs


# Characters that end or split a value in an ffmpeg filter string: a fonts folder holding one
# is not passed to libass (captions then use the system's fonts through fontconfig).
_FILTER_UNSAFE = frozenset("'\\:,;[]=")


def _fonts_dir() -> str:
    """The folder libass loads caption fonts from: one holding only the caption font (libass
    opens every font of the folder for every segment: 22 DejaVu faces cost about 50 ms per
    captioned segment, the one face it draws with the same frames), else the system's."""
    for d in (_caption_font_dir(), *FONT_DIRS):
        if d and Path(d).is_dir() and not _FILTER_UNSAFE.intersection(d):
            return d
    return ""


def _trusted(folder: Path, font: Path) -> bool:
    """The folder is this user's, written by no one else, and holds only a link to ``font``
    (another user's folder of the same name, or one with other fonts in it, is not used)."""
    try:
        st = folder.lstat()
        link = folder / font.name
        return (
            stat.S_ISDIR(st.st_mode)
            and st.st_uid == os.getuid()
            and not st.st_mode & 0o022
            and os.listdir(folder) == [font.name]
            and link.is_symlink()
            and link.resolve() == font.resolve()
        )
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def _caption_font_dir() -> str:
    font = next((Path(f) for f in cap.FONT_FILES if Path(f).is_file()), None)
    if font is None:
        return ""
    digest = hashlib.sha1(str(font).encode()).hexdigest()[:8]
    folder = Path(tempfile.gettempdir()) / f"foxpipe-caption-font-{os.getuid()}-{digest}"
    try:
        if not _trusted(folder, font):
            # Made aside, then renamed into place: another process making it at once is fine.
            staging = Path(tempfile.mkdtemp(prefix="foxpipe-fonts-"))
            staging.chmod(0o755)
            (staging / font.name).symlink_to(font)
            try:
                staging.rename(folder)
            except OSError:  # already there (another process), or in the way: use what is there
                shutil.rmtree(staging, ignore_errors=True)
        if _trusted(folder, font):
            return str(folder)
    except OSError as e:
        log.info("[SHORT] caption font folder not made (%s): the system's fonts instead", e)
    return ""


def _still_input(spec_source: str, tmp: Path, name: str, size: tuple[int, int]) -> Path:
    w, h = size
    dest = tmp / f"{name}.png"
    try:
        if spec_source:
            return fit_file(spec_source, dest, w, h)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        log.warning(
            "[SHORT] image %s unreadable (%s): a plain frame instead", Path(spec_source).name, e
        )
    Image.new("RGB", (w, h), MISSING_COLOR).save(dest, "PNG")
    return dest


def _render_segment(
    spec: _Spec, size: tuple[int, int], fps: int, cancel: threading.Event | None, timeout: float
) -> None:
    w, h = size
    with tempfile.TemporaryDirectory(prefix="foxpipe-seg-", dir=spec.path.parent) as tmpdir:
        tmp = Path(tmpdir)
        args: list[str] = []
        chains: list[str] = []
        if spec.clip:
            args += ["-i", spec.source]
            hold = max(0.0, spec.frames / fps - spec.clip_play)
            cur = (
                f"[0:v]scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},fps={fps},"
                f"trim=duration={spec.clip_play:.3f},setpts=PTS-STARTPTS,"
                f"tpad=stop_mode=clone:stop_duration={hold + 1 / fps:.3f},trim=end_frame={spec.frames},setsar=1"
            )
        else:
            still = _still_input(spec.source, tmp, "cur", size)
            args += ["-i", str(still)]
            z, x, y = spec.motion.expressions(spec.frames + spec.tail)
            cur = f"[0:v]{zoompan_filter(z, x, y, spec.frames, size, fps)}"
        chains.append(f"{cur},format=yuv420p,settb=AVTB[cur]")
        last = "cur"
        if spec.head and spec.prev_motion is not None:
            prev = _still_input(spec.prev_source, tmp, "prev", size)
            args += ["-i", str(prev)]
            z, x, y = spec.prev_motion.expressions(spec.prev_frames + spec.head, spec.prev_frames)
            chains.append(
                f"[1:v]{zoompan_filter(z, x, y, spec.head, size, fps)},format=yuv420p,settb=AVTB[prev]"
            )
            chains.append(
                f"[prev][cur]xfade=transition=fade:duration={spec.head / fps:.4f}:offset=0[x]"
            )
            last = "x"
        if spec.ass:
            (tmp / "captions.ass").write_text(spec.ass, encoding="utf-8")
            fonts = _fonts_dir()
            opt = f":fontsdir={fonts}" if fonts else ""  # a folder safe in a filter string
            chains.append(f"[{last}]ass=filename=captions.ass{opt}[c]")
            last = "c"
        part = spec.path.with_name(
            f"{spec.path.name}.{uuid.uuid4().hex[:8]}.part"
        )  # a concurrent prerender of the same segment writes its own
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostats",
            "-nostdin",
            *args,
            "-filter_complex",
            ";".join(chains),
            "-map",
            f"[{last}]",
            "-an",
            "-frames:v",
            str(spec.frames),
            "-r",
            str(fps),
            "-c:v",
            "libx264",
            "-preset",
            PRESET,
            "-crf",
            str(CRF),
            "-pix_fmt",
            "yuv420p",
            "-video_track_timescale",
            str(fps * 512),
            "-f",
            "mp4",
            "-progress",
            "pipe:1",
            str(part.resolve()),
        ]
        # the ASS file is named relative to the working directory: no filter-graph escaping of paths
        run_ffmpeg(cmd, spec.frames, None, cancel, timeout, cwd=tmp)
        part.replace(spec.path)


def _render_missing(
    specs: Sequence[_Spec],
    size: tuple[int, int],
    fps: int,
    *,
    workers: int,
    progress: Progress | None,
    cancel: threading.Event | None,
    timeout: float,
) -> tuple[int, int]:
    todo = [s for s in specs if not s.path.is_file()]
    reused = len(specs) - len(todo)
    if not todo:
        return 0, reused
    total = sum(s.frames for s in todo)
    done = 0
    lock = threading.Lock()

    def one(s: _Spec) -> None:
        nonlocal done
        if cancel is not None and cancel.is_set():
            raise RenderError("Stopped.")
        _render_segment(s, size, fps, cancel, timeout)
        with lock:
            done += s.frames
            if progress is not None:
                progress(done / total)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="segment") as pool:
        for f in [pool.submit(one, s) for s in todo]:
            f.result()
    return len(todo), reused


# ---------------------------------------------------------------- public
def _prepare(
    images: Sequence[str | Path | None],
    lines: Sequence[NarrationLine | None],
    out_dir: str | Path,
    size: tuple[int, int],
    *,
    fps: int,
    captions: bool,
    beats: Sequence[str] | None,
    pause: float,
    min_seconds: float,
    fade: float,
    silent_text: Sequence[str] | None = None,
) -> tuple[Path, Path, Timeline, list[cap.Cue], list[_Spec]]:
    if not images:
        raise RenderError("Nothing to put in the video.")
    w, h = size
    if not 1 <= fps <= 120:
        raise RenderError(f"{fps} frames per second is not usable (1 to 120).")
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise RenderError(f"The video size {w}x{h} is not usable (even sides, at least 16).")
    out = Path(out_dir)
    seg_dir = out / "segments"
    seg_dir.mkdir(parents=True, exist_ok=True)
    timeline, cues, specs = _plan(
        images,
        lines,
        size,
        fps=fps,
        captions=captions,
        beats=beats,
        pause=pause,
        min_seconds=min_seconds,
        fade=fade,
        seg_dir=seg_dir,
        silent_text=silent_text,
    )
    return out, seg_dir, timeline, cues, specs


def prerender(
    images: Sequence[str | Path | None],
    lines: Sequence[NarrationLine | None],
    out_dir: str | Path,
    size: tuple[int, int],
    *,
    captions: bool = True,
    fps: int = 30,
    beats: Sequence[str] | None = None,
    pause: float = NARRATION_PAUSE_SECONDS,
    min_seconds: float = SCENE_MIN_SECONDS,
    fade: float = CROSSFADE,
    music: str | Path | None = None,
    workers: int = 1,
    cancel: threading.Event | None = None,
    timeout: float = 600.0,
    silent_text: Sequence[str] | None = None,
) -> int:
    """Render the segments whose inputs are final (the scene's image approved, the
    previous one too, and both narration lines made), and the sound once every line is
    made, so the final render only joins. ``images[i]`` is None until scene i's image is
    approved; pass the same ``music`` as to render_short. Returns the segments it made."""
    _, seg_dir, timeline, _, specs = _prepare(
        images,
        lines,
        out_dir,
        size,
        fps=fps,
        captions=captions,
        beats=beats,
        pause=pause,
        min_seconds=min_seconds,
        fade=fade,
        silent_text=silent_text,
    )
    if all(_final(ln) for ln in lines):
        _sound(timeline, lines, seg_dir, music, timeout)  # the mix does not wait for the images
    made, _ = _render_missing(
        [s for s in specs if s.ready],
        size,
        fps,
        workers=workers,
        progress=None,
        cancel=cancel,
        timeout=timeout,
    )
    if made:
        log.info("[SHORT] pre-rendered %d segment(s) in %s", made, Path(out_dir).name)
    return made


def render_short(
    images: Sequence[str | Path | None],
    lines: Sequence[NarrationLine | None],
    out_dir: str | Path,
    size: tuple[int, int],
    music: str | Path | None = None,
    captions: bool = True,
    fps: int = 30,
    progress: Progress | None = None,
    *,
    beats: Sequence[str] | None = None,
    pause: float = NARRATION_PAUSE_SECONDS,
    min_seconds: float = SCENE_MIN_SECONDS,
    fade: float = CROSSFADE,
    workers: int = 2,
    cancel: threading.Event | None = None,
    timeout: float = 3600.0,
    silent_text: Sequence[str] | None = None,
) -> ShortResult:
    """Make story.mp4 (H.264 + AAC, +faststart), story.srt, narration.wav and
    narration/scene_NN.wav in ``out_dir``. ``images[i]`` is scene i's still or clip (None:
    a plain frame); ``lines`` the narration (any order, by ``index``); ``beats`` the scenes'
    beat names for the camera moves. A music file that cannot be used is left out and
    ``music_message`` says why. Raises RenderError when ffmpeg fails."""
    t0 = time.monotonic()

    def report(x: float) -> None:
        if progress is not None:
            progress(max(0.0, min(1.0, x)))

    out, seg_dir, timeline, cues, specs = _prepare(
        images,
        lines,
        out_dir,
        size,
        fps=fps,
        captions=captions,
        beats=beats,
        pause=pause,
        min_seconds=min_seconds,
        fade=fade,
        silent_text=silent_text,
    )
    made, reused = _render_missing(
        specs,
        size,
        fps,
        workers=workers,
        progress=lambda f: report(0.85 * f),
        cancel=cancel,
        timeout=timeout,
    )
    report(0.85)
    # the narration: one file on the video's clock, and a copy of each scene's line
    scene_dir = out / "narration"
    scene_dir.mkdir(exist_ok=True)
    scene_audio: list[Path] = []
    for line in sorted((ln for ln in lines if ln is not None), key=lambda ln: ln.index):
        if (
            0 <= line.index < len(timeline.scenes)
            and timeline.scenes[line.index].has_speech
            and Path(line.audio_path).is_file()
        ):
            dest = scene_dir / f"scene_{line.index + 1:02d}.wav"
            if Path(line.audio_path).resolve() != dest.resolve():
                shutil.copyfile(line.audio_path, dest)
            scene_audio.append(dest)
    sound = _sound(timeline, lines, seg_dir, music, timeout)
    narration = out / "narration.wav"
    shutil.copyfile(sound.narration, narration)
    report(0.93)
    # join: the segments and the encoded sound, both by stream copy
    listing = seg_dir / "segments.txt"
    listing.write_text("".join(f"file '{s.path.name}'\n" for s in specs), encoding="utf-8")
    video = out / "story.mp4"
    part = out / "story.part.mp4"
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-y",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostats",
        "-nostdin",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        listing.name,
        "-i",
        sound.audio.name,
        "-map",
        "0:v:0",
        "-map",
        "1:a:0",
        "-c",
        "copy",
        "-t",
        f"{timeline.total:.4f}",
        "-movflags",
        "+faststart",
        "-progress",
        "pipe:1",
        str(part.resolve()),
    ]
    run_ffmpeg(cmd, 0, None, cancel, timeout, cwd=seg_dir)
    part.replace(video)
    srt = out / "story.srt"
    srt.write_text(cap.srt_text(cues), encoding="utf-8")
    _prune(seg_dir, {s.path.name for s in specs} | set(sound.files))
    report(1.0)
    took = time.monotonic() - t0
    log.info(
        "[SHORT] %s: %.1f s, %d scenes (%d rendered, %d reused) in %.1f s",
        video,
        timeline.total,
        len(specs),
        made,
        reused,
        took,
    )
    return ShortResult(
        video=video,
        srt=srt,
        narration=narration,
        scene_audio=scene_audio,
        duration=timeline.total,
        timeline=timeline,
        cues=cues,
        loudness=sound.loudness,
        music_used=sound.music_used,
        music_message=sound.message,
        segments_rendered=made,
        segments_reused=reused,
        seconds=took,
    )


def _prune(seg_dir: Path, keep: set[str]) -> None:
    """Drop cached segments and sound no longer in the video (an older image, line or track)."""
    for pattern in ("seg_*.mp4", "sound_*"):
        for p in seg_dir.glob(pattern):
            if p.name not in keep:
                p.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Sound:
    narration: Path  # the whole narration, 48 kHz mono WAV
    audio: Path  # the final mix, AAC in an .m4a, normalized
    loudness: mix.Loudness  # measured on the AAC
    music_used: bool
    message: str
    files: tuple[str, ...]


def _sound(
    timeline: Timeline,
    lines: Sequence[NarrationLine | None],
    seg_dir: Path,
    music: str | Path | None,
    timeout: float,
) -> _Sound:
    """The narration track and the encoded final mix, cached under a key of the timeline,
    the lines' audio files and the music file: made once, as soon as the narration is done."""
    recipe = {
        "v": VERSION,
        "scenes": [
            [s.index, round(s.start, 4), round(s.end, 4), round(s.speech_end, 4)]
            for s in timeline.scenes
        ],
        "lines": sorted(
            [ln.index, _file_id(ln.audio_path)] for ln in lines if ln is not None and ln.audio_path
        ),
        "music": _file_id(str(music)) if music else None,
        "enc": [AUDIO_BITRATE, mix.TARGET_LUFS, mix.LOUDNORM_TP],
    }
    key = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    narration = seg_dir / f"sound_{key}_narration.wav"
    audio = seg_dir / f"sound_{key}.m4a"
    meta = seg_dir / f"sound_{key}.json"
    files = (narration.name, audio.name, meta.name)
    if narration.is_file() and audio.is_file() and meta.is_file():
        try:
            m = json.loads(meta.read_text(encoding="utf-8"))
            return _Sound(
                narration,
                audio,
                mix.Loudness(m["integrated"], m["true_peak"], m["lra"]),
                m["music_used"],
                m["message"],
                files,
            )
        except (ValueError, KeyError, TypeError):
            pass
    tag = uuid.uuid4().hex[:8]
    try:
        nar_part = mix.narration_track(timeline, lines, seg_dir / f"narration.{tag}.wav")
        mixed = mix.mix(
            nar_part, seg_dir / f"mix.{tag}.wav", timeline.total, music, timeout=timeout
        )
        aac_part = seg_dir / f"sound.{tag}.m4a"
        proc = subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-y",
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-i",
                str(mixed.path),
                "-c:a",
                "aac",
                "-b:a",
                AUDIO_BITRATE,
                "-ar",
                str(mix.RATE),
                "-movflags",
                "+faststart",
                str(aac_part),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        mixed.path.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise RenderError(f"ffmpeg could not encode the sound: {proc.stderr.strip()[-300:]}")
        loud = mix.measure(aac_part)
    except mix.MixError as e:
        raise RenderError(str(e)) from e
    except subprocess.TimeoutExpired as e:
        raise RenderError("Encoding the sound took too long and was stopped.") from e
    nar_part.replace(narration)
    aac_part.replace(audio)
    meta.write_text(
        json.dumps(
            {
                "integrated": loud.integrated,
                "true_peak": loud.true_peak,
                "lra": loud.lra,
                "music_used": mixed.music_used,
                "message": mixed.message,
            }
        ),
        encoding="utf-8",
    )
    return _Sound(narration, audio, loud, mixed.music_used, mixed.message, files)
