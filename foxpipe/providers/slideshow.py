"""The story video, rendered on this machine with the ffmpeg binary that ships in
``imageio-ffmpeg`` (no system install).

One ffmpeg process builds the whole video: each still image (fitted to the frame by
cover-cropping with Pillow) gets a slow pan/zoom (``zoompan``), each provider clip is
scaled and cropped the same way, captions are burned in from transparent PNG overlays,
and scenes are joined with short crossfades (``xfade``). Output: H.264, yuv420p,
``+faststart``, so it plays in browsers and phones. The same timeline gives the ``.srt``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

FPS = 25
CROSSFADE = 0.5  # seconds of overlap between scenes
ZOOM = 0.10  # how far the Ken Burns zoom travels over one scene
PRESET = "veryfast"
CRF = 23

Progress = Callable[[float], None]


class RenderError(Exception):
    """ffmpeg failed or was stopped; the message is readable."""


def output_size(image_size: str) -> tuple[int, int]:
    """The video frame for the story's image size: portrait 9:16 or landscape 16:9."""
    try:
        w, h = (int(v) for v in image_size.lower().split("x"))
    except ValueError:
        w, h = 1024, 1536
    return (1080, 1920) if h >= w else (1920, 1080)


def cover_fit(img: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover the frame and crop around the centre: never stretched."""
    img = img.convert("RGB")
    target = width / height
    if img.width / img.height > target:  # too wide: crop the sides
        cw, ch = img.height * target, float(img.height)
    else:  # too tall: crop top and bottom
        cw, ch = float(img.width), img.width / target
    x0, y0 = (img.width - cw) / 2, (img.height - ch) / 2
    return img.resize((width, height), Image.Resampling.LANCZOS, box=(x0, y0, x0 + cw, y0 + ch))


def fit_file(src: str | Path, dest: Path, width: int, height: int) -> Path:
    """The image fitted to the frame, as a fast-to-write PNG (RGB keeps the video in TV range)."""
    with Image.open(src) as im:
        cover_fit(im, width, height).save(dest, "PNG", compress_level=1)
    return dest


# ---------------------------------------------------------------- captions and subtitles
def _wrap(
    text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, max_width: float, max_lines: int
) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        trial = f"{line} {w}".strip()
        if font.getlength(trial) <= max_width or not line:
            line = trial
        else:
            lines.append(line)
            line = w
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        while lines[-1] and font.getlength(lines[-1] + "…") > max_width:
            lines[-1] = lines[-1].rsplit(" ", 1)[0] if " " in lines[-1] else lines[-1][:-1]
        lines[-1] += "…"
    return lines


def caption_image(text: str, width: int, height: int) -> Image.Image:
    """A transparent strip with the scene's text on a soft dark band, for the lower third."""
    px = max(12, round(min(width, height) / 24))
    font = ImageFont.load_default(size=px)
    pad = round(px * 0.8)
    lines = _wrap(" ".join(text.split()), font, width - 4 * pad, 4)
    line_h = round(px * 1.3)
    strip_h = len(lines) * line_h + 2 * pad
    img = Image.new("RGBA", (width, strip_h), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([pad, 0, width - pad, strip_h - 1], radius=pad, fill=(0, 0, 0, 150))
    y = pad
    for line in lines:
        lw = font.getlength(line)
        d.text(((width - lw) / 2, y), line, font=font, fill=(255, 255, 255, 255))
        y += line_h
    return img


def _ts(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def srt_text(cues: list[tuple[float, float, str]]) -> str:
    out = []
    for n, (start, end, text) in enumerate(cues, 1):
        out.append(f"{n}\n{_ts(start)} --> {_ts(end)}\n{' '.join(text.split())}\n")
    return "\n".join(out)


# ---------------------------------------------------------------- the timeline
@dataclass
class Segment:
    """One scene of the video: a still image (pan/zoom) or a clip, with its text."""

    path: str
    text: str
    seconds: float  # how long the scene shows (a clip: its own length)
    clip: bool = False


def timeline(lengths: list[float], fade: float) -> tuple[list[float], float]:
    """Start of each segment when consecutive ones overlap by ``fade``, and the total."""
    starts, t = [], 0.0
    for i, length in enumerate(lengths):
        starts.append(t)
        t += length - (fade if i < len(lengths) - 1 else 0.0)
    return starts, t


def cues(
    segments: list[Segment], lengths: list[float], fade: float
) -> list[tuple[float, float, str]]:
    """Subtitle times: each text changes in the middle of its crossfade."""
    starts, total = timeline(lengths, fade)
    out = []
    for i, seg in enumerate(segments):
        start = 0.0 if i == 0 else starts[i] + fade / 2
        end = total if i == len(segments) - 1 else starts[i + 1] + fade / 2
        out.append((start, end, seg.text))
    return out


_MOTIONS = (  # (zoom, x, y) expressions for zoompan; p runs 0 -> 1 over the scene
    ("1+{z}*{p}", "(iw-iw/zoom)/2", "(ih-ih/zoom)/2"),  # zoom in on the centre
    ("1+{z}", "(iw-iw/zoom)*{p}", "(ih-ih/zoom)/2"),  # pan left to right
    ("1+{z}-{z}*{p}", "(iw-iw/zoom)/2", "(ih-ih/zoom)*0.3"),  # zoom out, upper part
    ("1+{z}", "(iw-iw/zoom)*(1-{p})", "(ih-ih/zoom)/2"),  # pan right to left
)


@dataclass
class Rendered:
    duration: float
    cues: list[tuple[float, float, str]]  # (start, end, text) per scene, for the .srt


@dataclass
class VideoInfo:
    codec: str
    pix_fmt: str
    width: int
    height: int
    duration: float


_STREAM = re.compile(r"Stream #\S+.*?Video: (\w+).*?, (\w+)(?:\([^)]*\))?, (\d{2,5})x(\d{2,5})")
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


def probe(path: str | Path) -> VideoInfo:
    """Codec, pixel format, frame size and duration, from the header ffmpeg prints
    (the package ships ffmpeg, not ffprobe)."""
    proc = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    m = _STREAM.search(proc.stderr)
    d = _DURATION.search(proc.stderr)
    if not m or not d:
        raise RenderError(f"{Path(path).name} is not a readable video.")
    duration = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3))
    return VideoInfo(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), duration)


def render(
    segments: list[Segment],
    out: Path,
    size: tuple[int, int],
    *,
    captions: bool = True,
    fade: float = CROSSFADE,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    timeout: float = 3600.0,
) -> Rendered:
    """Render the segments into one MP4 at ``out``; returns its length and subtitle cues."""
    if not segments:
        raise RenderError("Nothing to put in the video.")
    w, h = size
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="foxpipe-video-") as tmpdir:
        tmp = Path(tmpdir)
        args: list[str] = []
        chains: list[str] = []
        lengths: list[float] = []
        n_in = 0
        for i, seg in enumerate(segments):
            if seg.clip:
                length = max(seg.seconds, fade + 0.2)
                args += ["-i", seg.path]
                chain = (
                    f"[{n_in}:v]scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},"
                    f"fps={FPS},trim=duration={length:.3f},setpts=PTS-STARTPTS,setsar=1"
                )
            else:
                length = seg.seconds + (fade if len(segments) > 1 else 0.0)
                frames = max(2, round(length * FPS))
                still = fit_file(seg.path, tmp / f"still_{i:02d}.png", w, h)
                args += ["-i", str(still)]
                p = f"on/{frames - 1}"
                z, x, y = (e.format(z=ZOOM, p=p) for e in _MOTIONS[i % len(_MOTIONS)])
                chain = f"[{n_in}:v]{zoompan_filter(z, x, y, frames, (w, h), FPS)}"
                length = frames / FPS
            n_in += 1
            if captions and seg.text.strip():
                cap = caption_image(seg.text, w, h)
                cap_path = tmp / f"caption_{i:02d}.png"
                cap.save(cap_path)
                args += ["-i", str(cap_path)]
                # Both sides in yuv420p before blending: several times faster than format=auto.
                chain += (
                    f",format=yuv420p[b{i}];[{n_in}:v]format=yuva420p[c{i}];"
                    f"[b{i}][c{i}]overlay=0:{(h - cap.height - round(h * 0.06)) // 2 * 2}:format=yuv420"
                )
                n_in += 1
            chains.append(f"{chain},format=yuv420p,settb=AVTB[s{i}]")
            lengths.append(length)
        starts, total = timeline(lengths, fade if len(segments) > 1 else 0.0)
        last = "s0"
        for i in range(1, len(segments)):
            chains.append(
                f"[{last}][s{i}]xfade=transition=fade:duration={fade}:offset={starts[i]:.3f}[x{i}]"
            )
            last = f"x{i}"
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostats",
            *args,
            "-filter_complex",
            ";".join(chains),
            "-map",
            f"[{last}]",
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            PRESET,
            "-crf",
            str(CRF),
            "-pix_fmt",
            "yuv420p",
            "-r",
            str(FPS),
            "-movflags",
            "+faststart",
            "-progress",
            "pipe:1",
            str(out),
        ]
        run_ffmpeg(cmd, round(total * FPS), progress, cancel, timeout)
    log.info("[VIDEO] rendered %s: %d scenes, %.1f s", out.name, len(segments), total)
    return Rendered(total, cues(segments, lengths, fade if len(segments) > 1 else 0.0))


def zoompan_filter(z: str, x: str, y: str, frames: int, size: tuple[int, int], fps: int) -> str:
    """The pan/zoom filter for one still fitted to ``size``: ``z``, ``x``, ``y`` are zoompan
    expressions (``on`` is the output frame number), ``frames`` the frames it makes."""
    w, h = size
    return f"zoompan=z='{z}':x='{x}':y='{y}':d={frames}:s={w}x{h}:fps={fps},setsar=1"


def run_ffmpeg(
    cmd: list[str],
    total_frames: int,
    progress: Progress | None,
    cancel: threading.Event | None,
    timeout: float,
    cwd: Path | None = None,
) -> None:
    """Run ffmpeg with ``-progress pipe:1`` in ``cmd`` (in ``cwd``, when given); report frames
    done as a fraction, stop on ``cancel`` or after ``timeout`` seconds; a readable
    RenderError on failure."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    err_lines: list[str] = []
    reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    try:
        for line in proc.stdout or []:
            if cancel is not None and cancel.is_set():
                raise RenderError("Stopped.")
            if time.monotonic() - t0 > timeout:
                raise RenderError(f"Rendering took longer than {timeout:.0f} s and was stopped.")
            if line.startswith("frame=") and progress is not None and total_frames:
                with contextlib.suppress(ValueError):
                    progress(min(1.0, int(line.split("=", 1)[1]) / total_frames))
        proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        reader.join(5)
    if proc.returncode != 0:
        detail = "".join(err_lines[-5:]).strip()[-500:]
        raise RenderError(f"ffmpeg failed (exit {proc.returncode}): {detail or 'no details'}")
