"""Seconds to render the 20-scene 1080x1920 story video on this machine, and the ratio to
the video's own length. Compares the app's renderer (one ffmpeg filter graph: zoompan +
overlay + xfade) with the alternative (frames drawn by Pillow, piped into one ffmpeg).

    python benchmarks/video_render.py [seconds_per_scene] [--skip-pipe]
"""

from __future__ import annotations

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
        p.write_bytes(offline.render_card(sc.number, sc.beat, sc.text, "1024x1536", sc.number >= 11))
        segs.append(slideshow.Segment(str(p), sc.text, SECONDS))
    return segs


def piped(segs: list[slideshow.Segment], out: Path) -> float:
    """Frames rendered in Python (crop + bilinear resize per frame, blend in the fades,
    caption pasted), piped as raw RGB into one ffmpeg process."""
    fps, fade = slideshow.FPS, slideshow.CROSSFADE
    stills = [slideshow.cover_fit(Image.open(s.path), round(W * 1.1), round(H * 1.1)) for s in segs]
    caps = [slideshow.caption_image(s.text, W, H) for s in segs]
    total = len(segs) * SECONDS + fade
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{W}x{H}", "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", slideshow.PRESET,
           "-crf", str(slideshow.CRF), "-pix_fmt", "yuv420p", str(out)]
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

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        segs = make_images(folder)
        print(f"20 scenes, {W}x{H}, {SECONDS:g} s per scene, {slideshow.FPS} fps, preset {slideshow.PRESET}")
        if "--skip-pipe" not in sys.argv:
            t0 = time.perf_counter()
            length = piped(segs, folder / "piped.mp4")
            el = time.perf_counter() - t0
            print(f"Pillow frames piped to ffmpeg: {el:.1f} s for {length:.1f} s of video ({length / el:.2f}x real time)")
        t0 = time.perf_counter()
        length = slideshow.render(segs, folder / "story.mp4", (W, H)).duration
        el = time.perf_counter() - t0
        info = slideshow.probe(folder / "story.mp4")
        size = (folder / "story.mp4").stat().st_size / 1e6
        print(f"ffmpeg filter graph (the app's renderer): {el:.1f} s for {length:.1f} s of video, "
              f"{info.codec} {info.pix_fmt} {info.width}x{info.height}, {size:.1f} MB")
        print(f"render speed: {length / el:.1f}× real time")
