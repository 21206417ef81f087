"""Shared pieces of the Short tests: synthetic narration with known word timings, music
files, and measurements on rendered files with the bundled ffmpeg."""

from __future__ import annotations

import math
import re
import struct
import subprocess
import wave
from pathlib import Path

import imageio_ffmpeg
from PIL import Image

from foxpipe.domain.narration import LineStatus, NarrationLine, Word

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
VOICE_HZ = 1500.0  # the synthetic voice sits well above the test music (150 Hz)
MUSIC_HZ = 150.0


def speech_wav(path: Path, words: list[tuple[float, float]], rate: int = 24000) -> float:
    """A PCM16 mono WAV with a tone burst (with a little vibrato, like a voiced syllable)
    for every (start, end) word and silence between; returns its length."""
    total = words[-1][1] + 0.08 if words else 0.5
    frames = bytearray()
    for i in range(int(total * rate)):
        t = i / rate
        v = 0.0
        for s, e in words:
            if s <= t < e:
                env = min(1.0, (t - s) / 0.01, (e - t) / 0.01)
                v = (
                    0.45
                    * env
                    * (
                        0.8 * math.sin(2 * math.pi * VOICE_HZ * t)
                        + 0.2 * math.sin(2 * math.pi * 2 * VOICE_HZ * t)
                    )
                )
                break
        frames += struct.pack("<h", int(v * 32767))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return len(frames) / 2 / rate


def line(
    folder: Path, index: int, text: str, word_seconds: float = 0.32, gap: float = 0.12
) -> NarrationLine:
    """A ready narration line: one burst per word of ``text``, with those word timings."""
    words = text.split()
    spans = [
        (0.05 + k * (word_seconds + gap), 0.05 + k * (word_seconds + gap) + word_seconds)
        for k in range(len(words))
    ]
    path = folder / f"line_{index:02d}.wav"
    duration = speech_wav(path, spans)
    return NarrationLine(
        index,
        text,
        LineStatus.READY,
        str(path),
        duration=duration,
        words=[Word(w, s, e) for w, (s, e) in zip(words, spans, strict=True)],
        timing="provider",
    )


def silent(index: int) -> NarrationLine:
    return NarrationLine(index, "", LineStatus.EMPTY)


def images(folder: Path, count: int, size: tuple[int, int] = (240, 360)) -> list[Path]:
    out = []
    for i in range(count):
        p = folder / f"scene_{i:02d}.png"
        img = Image.new("RGB", size, (30 + 40 * (i % 5), 90 + 25 * (i % 4), 200 - 30 * (i % 6)))
        img.paste((250, 250, 250), (size[0] // 3, size[1] // 3, size[0] // 2, size[1] // 2))
        img.save(p)
        out.append(p)
    return out


def music_file(path: Path, seconds: float = 6.0) -> Path:
    """A steady low tone as the music (encoded by the file's extension: mp3, ogg, m4a, wav)."""
    subprocess.run(
        [
            FFMPEG,
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"sine=f={MUSIC_HZ}:d={seconds}:r=44100",
            "-ac",
            "2",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def band_level(path: Path, start: float, end: float, below_hz: float = 400.0) -> float:
    """Mean level (dB) of the file's audio under ``below_hz`` between two times: the music
    alone, with the synthetic voice filtered out."""
    proc = subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-nostats",
            "-ss",
            f"{start:.3f}",
            "-to",
            f"{end:.3f}",
            "-i",
            str(path),
            "-vn",
            "-af",
            f"lowpass=f={below_hz},lowpass=f={below_hz},lowpass=f={below_hz},volumedetect",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"mean_volume: (-?[\d.]+|-inf) dB", proc.stderr)
    assert m, proc.stderr[-500:]
    return float("-inf") if m.group(1) == "-inf" else float(m.group(1))


def streams(path: Path) -> tuple[list[str], float]:
    """The codecs of a file's streams ("video:h264", "audio:aac") and its duration."""
    proc = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True, timeout=30
    )
    codecs = [
        f"{kind.lower()}:{codec}"
        for kind, codec in re.findall(r"Stream #\S+.*?: (Video|Audio): (\w+)", proc.stderr)
    ]
    d = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", proc.stderr)
    assert d, proc.stderr
    return codecs, int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3))


def stream_seconds(path: Path, kind: str) -> float:
    """The decoded length of one stream ("v" or "a"), from the last timestamp ffmpeg reaches."""
    proc = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-map", f"0:{kind}:0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    times = re.findall(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)", proc.stderr)
    assert times, proc.stderr[-500:]
    h, m, s = times[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    def ts(s: str) -> float:
        h, m, rest = s.split(":")
        sec, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(sec) + int(ms) / 1000

    out = []
    for block in text.strip().split("\n\n"):
        rows = block.splitlines()
        a, b = rows[1].split(" --> ")
        out.append((ts(a), ts(b), " ".join(rows[2:])))
    return out
