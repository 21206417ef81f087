"""The Short's sound and captions: three steps measured against what they replaced, in one run.

- mix: a 57 s narration (espeak-ng), with and without the built-in bed, normalized by gains and
  the limiter measured with ebur128 (the default) against loudnorm's two passes
  (``SHAPING_TRIES = 0``, the earlier way); the loudness and true peak of each result
- speech spans: silencedetect's rule in numpy against the bundled ffmpeg, on 20 spoken lines
- captions: one captioned segment's ffmpeg run with a fonts folder holding only the caption
  font against the system's DejaVu folder

Medians of alternating rounds (a busy machine moves both sides alike); ratios from one run.
Run: ``python benchmarks/short_audio.py``
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foxpipe.media import mix, short, words  # noqa: E402

ROUNDS = 3
LINE = "Pip the little fox runs home through the tall grass, and the moon watches."


def timed(fn) -> float:  # noqa: ANN001
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def speak(path: Path, text: str) -> Path:
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=60)
    return path


def bench_mix(tmp: Path) -> None:
    voice = speak(tmp / "voice.wav", " ".join([LINE] * 14))
    with wave.open(str(voice)) as w:
        seconds = w.getnframes() / w.getframerate() + 1.0
    bed = mix.builtin_track(tmp / "bed.wav", 40.0)
    default_tries = mix.SHAPING_TRIES
    for music in (None, bed):
        times: dict[str, list[float]] = {"gains": [], "loudnorm": []}
        results = {}
        for _ in range(ROUNDS):
            for name, tries in (("gains", default_tries), ("loudnorm", 0)):
                mix.SHAPING_TRIES = tries
                t = time.perf_counter()
                results[name] = mix.mix(voice, tmp / f"{name}.wav", seconds, music)
                times[name].append(time.perf_counter() - t)
        mix.SHAPING_TRIES = default_tries
        label = "voice + bed" if music else "voice alone"
        for name in ("gains", "loudnorm"):
            r = results[name].loudness
            print(
                f"mix, {label}, {seconds:.0f} s, {name:8s}: {statistics.median(times[name]):.2f} s"
                f"  ({r.integrated:.1f} LUFS, {r.true_peak:.1f} dBTP)"
            )
        ratio = statistics.median(times["loudnorm"]) / statistics.median(times["gains"])
        print(f"mix, {label}: loudnorm's two passes take {ratio:.1f}x as long")


def bench_spans(tmp: Path) -> None:
    lines = [speak(tmp / f"line{i}.wav", " ".join(LINE.split()[: 4 + i % 9])) for i in range(20)]
    np_t, ff_t = [], []
    for _ in range(ROUNDS):
        np_t.append(timed(lambda: [words.pcm16_silences(p) for p in lines]) / len(lines))
        ff_t.append(timed(lambda: [words.ffmpeg_silences(p) for p in lines]) / len(lines))
    same = all(words.pcm16_silences(p) == words.ffmpeg_silences(p) for p in lines)
    a, b = statistics.median(np_t) * 1000, statistics.median(ff_t) * 1000
    print(
        f"speech span per line: numpy {a:.2f} ms, ffmpeg {b:.1f} ms ({b / a:.0f}x); equal: {same}"
    )


def bench_caption_fonts(tmp: Path) -> None:
    import imageio_ffmpeg
    from PIL import Image

    from foxpipe.domain.narration import LineStatus, NarrationLine, Word
    from foxpipe.media import captions as cap
    from foxpipe.media.timeline import plan

    still = tmp / "still.png"
    Image.new("RGB", (270, 480), (200, 120, 40)).save(still)
    text = "Pip hums a tiny song to the moon"
    ws = [Word(t, 0.2 * i, 0.2 * i + 0.2) for i, t in enumerate(text.split())]
    line = NarrationLine(0, text, status=LineStatus.READY, words=ws, duration=2.0)
    lines = [line]
    (tmp / "c.ass").write_text(cap.ass_text(cap.build_cues(plan(lines), lines), (270, 480)))
    system = next(d for d in short.FONT_DIRS if Path(d).is_dir())
    folders = {"caption font only": short._fonts_dir(), "system folder": system}

    def render(folder: str) -> None:
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-loop", "1", "-i",
             str(still), "-filter_complex",
             f"[0:v]zoompan=z='1+0.001*on':d=24:s=270x480:fps=12,format=yuv420p,"
             f"ass=filename=c.ass:fontsdir={folder}", "-frames:v", "24",
             "-c:v", "libx264", "-preset", "superfast", str(tmp / "seg.mp4")],
            check=True, cwd=tmp, timeout=60,
        )  # fmt: skip

    times: dict[str, list[float]] = {k: [] for k in folders}
    for _ in range(ROUNDS * 3):
        for name, folder in folders.items():
            times[name].append(timed(lambda: render(folder)))  # noqa: B023
    one, every = (statistics.median(times[k]) * 1000 for k in folders)
    print(
        f"captioned segment (24 frames): caption font only {one:.0f} ms, system folder "
        f"{every:.0f} ms ({every - one:.0f} ms less)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_mix(tmp)
        bench_spans(tmp)
        (tmp / "captions").mkdir()
        bench_caption_fonts(tmp / "captions")


if __name__ == "__main__":
    main()
