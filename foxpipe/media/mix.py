"""The Short's sound: the narration placed on the timeline, an optional music track
(checked, trimmed or looped, faded, ducked under the voice with a sidechain compressor),
and the mix normalized for the platforms (−14 LUFS integrated, true peak ≤ −1 dBTP).

Normalization: measure, bring the level near the target with a gain and a lookahead limiter (so
the peaks leave room), measure again (ebur128, true peak) and apply the last gain to the target
linearly; when the peaks have no room, correct the gain and the limiter's ceiling and measure
again, and only then let ``loudnorm`` shape them. The result is checked with ``ebur128``.
All audio work runs the ffmpeg binary that ships in ``imageio-ffmpeg``.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import imageio_ffmpeg

from foxpipe.domain.narration import NarrationLine
from foxpipe.media.timeline import Timeline, spoken

log = logging.getLogger(__name__)

RATE = 48_000
TARGET_LUFS = -14.0
TARGET_TP = -1.0
LOUDNORM_TP = -2.0  # aim under the limit: the AAC encoder adds a few tenths of a dB of peak
LIMIT_DBFS = -3.0  # the pre-gain limiter's ceiling (sample peak; true peak can be a little higher)
SHAPING_TRIES = 2  # gain and ceiling measured and corrected this often before loudnorm shapes
MIN_CEILING_DBFS = -24.0  # alimiter's lowest limit is 0.0625 (-24.08 dBFS)
VOICE_LUFS = -18.0  # the voice before mixing: a fixed level so the ducking depth is predictable
MUSIC_BELOW_VOICE_DB = 14.0  # music between the lines, relative to the voice
FADE_IN = 1.5
FADE_OUT = 2.0

MUSIC_EXTENSIONS = (".mp3", ".wav", ".m4a", ".ogg")
MUSIC_MAX_BYTES = 50 * 1024 * 1024
MUSIC_MAX_SECONDS = 30 * 60.0
TIMEOUT = 300.0


class MixError(Exception):
    """ffmpeg could not make the audio; the message is readable."""


def _ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _run(args: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            [_ffmpeg(), "-hide_banner", "-nostdin", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise MixError(f"Audio processing took longer than {timeout:.0f} s and was stopped.") from e
    return proc


def _checked(args: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    proc = _run(["-y", "-loglevel", "error", *args], timeout)
    if proc.returncode != 0:
        raise MixError(
            f"ffmpeg failed on the audio (exit {proc.returncode}): {proc.stderr.strip()[-400:]}"
        )
    return proc


# ---------------------------------------------------------------- music files
@dataclass(frozen=True)
class MusicCheck:
    ok: bool
    message: str = ""  # why the track is not used, for the user
    duration: float = 0.0


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


def check_music(
    path: str | Path,
    *,
    max_bytes: int = MUSIC_MAX_BYTES,
    max_seconds: float = MUSIC_MAX_SECONDS,
) -> MusicCheck:
    """Whether an uploaded track can be used: its type, size, that ffmpeg finds an audio
    stream and decodes it, and its length. Never raises."""
    p = Path(path).resolve()
    name = Path(path).name or "The music file"
    if p.suffix.lower() not in MUSIC_EXTENSIONS:
        return MusicCheck(
            False,
            f"{name}: music must be an mp3, wav, m4a or ogg file; the video is made without music.",
        )
    try:
        size = p.stat().st_size
    except OSError:
        return MusicCheck(False, f"{name} could not be read; the video is made without music.")
    if size > max_bytes:
        return MusicCheck(
            False,
            f"{name} is {size / 2**20:.0f} MB; music may be at most {max_bytes / 2**20:.0f} MB. "
            "The video is made without music.",
        )
    if size == 0:
        return MusicCheck(False, f"{name} is empty; the video is made without music.")
    try:
        info = _run(["-i", str(p)], timeout=30)
        d = _DURATION.search(info.stderr)
        if not re.search(r"Stream #\S+.*: Audio: ", info.stderr) or not d:
            return MusicCheck(
                False,
                f"{name} is not an audio file ffmpeg can read; the video is made without music.",
            )
        duration = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3))
        if duration > max_seconds:
            return MusicCheck(
                False,
                f"{name} is {duration / 60:.0f} minutes long; music may be at most {max_seconds / 60:.0f} minutes. "
                "The video is made without music.",
            )
        if duration < 0.5:
            return MusicCheck(
                False, f"{name} is too short to use as music; the video is made without music."
            )
        dec = _run(["-v", "error", "-i", str(p), "-t", "3", "-vn", "-f", "null", "-"], timeout=30)
        if dec.returncode != 0:
            return MusicCheck(
                False, f"{name} could not be decoded; the video is made without music."
            )
    except (OSError, MixError) as e:
        log.warning("[MUSIC] probe failed: %s", e)
        return MusicCheck(False, f"{name} could not be checked; the video is made without music.")
    return MusicCheck(True, "", duration)


def builtin_track(out: str | Path, seconds: float = 40.0) -> Path:
    """A royalty-free ambient bed synthesized on the spot: a slow A-minor pad with a soft
    pulse and a breath of filtered noise. Loops cleanly at ``seconds``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    notes = [(110.0, 0.30), (220.0, 0.22), (261.63, 0.16), (329.63, 0.14), (440.0, 0.06)]
    pad = "+".join(
        f"{a}*sin(2*PI*{f}*t)*(0.7+0.3*sin(2*PI*{0.05 * (k + 1):.3f}*t))"
        for k, (f, a) in enumerate(notes)
    )
    pulse = "0.12*sin(2*PI*55*t)*pow(max(0,sin(2*PI*1.0*t)),8)"
    _checked(
        [
            "-f",
            "lavfi",
            "-i",
            f"aevalsrc='({pad}+{pulse})/2':s={RATE}:d={seconds}:c=stereo",
            "-f",
            "lavfi",
            "-i",
            f"anoisesrc=c=pink:a=0.03:d={seconds}:r={RATE}",
            "-filter_complex",
            "[1:a]lowpass=f=600,aformat=channel_layouts=stereo[n];[0:a][n]amix=inputs=2:normalize=0,"
            f"afade=t=in:d=0.05,afade=t=out:st={seconds - 0.05}:d=0.05",
            "-c:a",
            "pcm_s16le",
            str(out),
        ]
    )
    return out


# ---------------------------------------------------------------- measuring
@dataclass(frozen=True)
class Loudness:
    integrated: float  # LUFS
    true_peak: float  # dBTP
    lra: float = 0.0


def measure(
    path: str | Path,
    start: float | None = None,
    duration: float | None = None,
    *,
    peak: bool = True,
    chain: str = "",
) -> Loudness:
    """Integrated loudness, loudness range and true peak of a file's audio (ebur128), after the
    filter ``chain`` when one is given. Without ``peak`` the true peak is not measured (NaN):
    the 4x oversampling is half the work, and the loudness is the same."""
    args = []
    if start is not None:
        args += ["-ss", f"{start:.3f}"]
    if duration is not None:
        args += ["-t", f"{duration:.3f}"]
    proc = _run(
        [
            "-nostats",
            *args,
            "-i",
            str(path),
            "-vn",
            "-filter_complex",
            (f"[0:a]{chain}," if chain else "") + ("ebur128=peak=true" if peak else "ebur128"),
            "-f",
            "null",
            "-",
        ]
    )
    text = proc.stderr
    summary = text[text.rfind("Summary:") :] if "Summary:" in text else ""
    i = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    lra = re.search(r"LRA:\s+(-?[\d.]+) LU", summary)
    tp = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    if proc.returncode != 0 or not i or (peak and not tp):
        raise MixError(f"Could not measure the loudness of {Path(path).name}.")

    def num(s: str) -> float:
        return float("-inf") if s == "-inf" else float(s)

    true_peak = num(tp.group(1)) if tp else float("nan")
    return Loudness(num(i.group(1)), true_peak, float(lra.group(1)) if lra else 0.0)


def _loudnorm_stats(inp: str | Path, chain: str) -> dict[str, float]:
    proc = _run(
        [
            "-nostats",
            "-i",
            str(inp),
            "-af",
            f"{chain},loudnorm=I={TARGET_LUFS}:TP={LOUDNORM_TP}:LRA=50:print_format=json",
            "-f",
            "null",
            "-",
        ]
    )
    m = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", proc.stderr)
    if proc.returncode != 0 or not m:
        raise MixError("Could not measure the mix for loudness normalization.")
    data = json.loads(m.group(0))
    return {k: float(data[k]) for k in ("input_i", "input_tp", "input_lra", "input_thresh")}


def _limiter(gain: float, ceiling_db: float) -> str:
    return (
        f"volume={gain:.2f}dB,"
        f"alimiter=limit={10 ** (ceiling_db / 20):.4f}:level=0:attack=5:release=60"
    )


def _normalizer(premix: Path, gain: float) -> str:
    """The filter chain that brings ``premix`` to the target: a gain and a lookahead limiter
    (``gain`` is what the target asks of the unshaped mix), then one more gain to the target
    when the true peak leaves room for it, which is loudnorm's linear mode without its 192 kHz
    round trip (measured with ebur128; a fifth of the time). When the limiter cost loudness or
    the true peak has no room, the gain is raised by the loss and the ceiling lowered by the
    excess, and measured again (``SHAPING_TRIES``); peaks that still need shaping go to
    loudnorm."""
    first = _limiter(gain, LIMIT_DBFS)
    limiter, ceiling = first, LIMIT_DBFS
    for attempt in range(SHAPING_TRIES):
        try:
            shaped = measure(premix, chain=limiter)
        except MixError:
            break
        if shaped.integrated <= -70:
            break
        offset = TARGET_LUFS - shaped.integrated
        excess = shaped.true_peak + offset - LOUDNORM_TP
        if excess <= 0:
            return f"{limiter},volume={offset:.2f}dB"
        if attempt + 1 < SHAPING_TRIES:
            gain, ceiling = gain + offset, max(MIN_CEILING_DBFS, ceiling - excess - 0.1)
            limiter = _limiter(gain, ceiling)
    limiter = first  # loudnorm shapes what the first gain and limiter made, as it always did
    st = _loudnorm_stats(premix, limiter)
    return (
        f"{limiter},loudnorm=I={TARGET_LUFS}:TP={LOUDNORM_TP}:LRA=50:measured_I={st['input_i']}:"
        f"measured_TP={st['input_tp']}:measured_LRA={st['input_lra']}:measured_thresh={st['input_thresh']}:"
        f"linear=true,aresample={RATE}"
    )


# ---------------------------------------------------------------- narration track
def narration_track(
    timeline: Timeline, lines: Sequence[NarrationLine | None], out: str | Path
) -> Path:
    """One WAV (48 kHz mono PCM16) of the whole narration: each scene's line starts at the
    scene's start, then silence to the scene's end. Exactly ``timeline.total`` long."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    by_index = {ln.index: ln for ln in lines if ln is not None}
    args: list[str] = []
    parts: list[str] = []
    n = 0
    for span in timeline.scenes:
        line = by_index.get(span.index)
        frames = timeline.frames(span.index)
        samples = round(frames / timeline.fps * RATE)
        if line is not None and spoken(line) > 0 and Path(line.audio_path).is_file():
            args += ["-i", line.audio_path]
            parts.append(
                f"[{n}:a]aresample={RATE},aformat=sample_fmts=s16:channel_layouts=mono,"
                f"apad=whole_len={samples},atrim=end_sample={samples}[a{span.index}]"
            )
            n += 1
        else:
            parts.append(
                f"anullsrc=r={RATE}:cl=mono,aformat=sample_fmts=s16,atrim=end_sample={samples}[a{span.index}]"
            )
    labels = "".join(f"[a{s.index}]" for s in timeline.scenes)
    graph = ";".join(parts) + f";{labels}concat=n={len(timeline.scenes)}:v=0:a=1[out]"
    _checked(
        [
            *args,
            "-filter_complex",
            graph,
            "-map",
            "[out]",
            "-ar",
            str(RATE),
            "-ac",
            "1",
            "-c:a",
            "pcm_s16le",
            str(out),
        ]
    )
    return out


# ---------------------------------------------------------------- the mix
@dataclass(frozen=True)
class MixResult:
    path: Path
    loudness: Loudness
    music_used: bool
    message: str = ""  # why the music was left out, if it was


def mix(
    voice: str | Path,
    out: str | Path,
    duration: float,
    music: str | Path | None = None,
    *,
    music_level_db: float = -MUSIC_BELOW_VOICE_DB,
    timeout: float = TIMEOUT,
) -> MixResult:
    """The final sound (48 kHz stereo WAV): the voice, and the music (when given and usable)
    looped or trimmed to ``duration``, faded, ducked under the voice; normalized to
    −14 LUFS with the true peak under −1 dBTP. A bad music file leaves the music out and
    says why in ``message``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    voice = Path(voice).resolve()  # absolute: a name starting with "-" is never read as an option
    music = Path(music).resolve() if music else None
    message = ""
    check = check_music(music) if music else None
    if check is not None and not check.ok:
        message = check.message
        log.info("[MUSIC] left out: %s", message)
    use_music = check is not None and check.ok
    try:
        v = measure(voice, peak=False)  # only its loudness sets the voice's gain
        v_gain = VOICE_LUFS - v.integrated if v.integrated > -70 else 0.0
    except MixError:
        v_gain = 0.0
    premix = out.with_name(out.stem + ".premix.wav")
    d = f"{duration:.4f}"
    voice_chain = (
        f"[0:a]aresample={RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,volume={v_gain:.2f}dB,"
        f"apad,atrim=0:{d}"
    )
    if use_music:
        assert music is not None
        try:
            m = measure(
                music, duration=min(duration, check.duration) if check else duration, peak=False
            )
            m_gain = VOICE_LUFS + music_level_db - m.integrated if m.integrated > -70 else 0.0
        except MixError:
            m_gain = -20.0
        fade_out = max(0.0, duration - FADE_OUT)
        graph = (
            f"{voice_chain},asplit=2[v][sc];"
            f"[1:a]aresample={RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,atrim=0:{d},asetpts=N/SR/TB,"
            f"volume={m_gain:.2f}dB,afade=t=in:d={min(FADE_IN, duration / 4):.2f},"
            f"afade=t=out:st={fade_out:.2f}:d={min(FADE_OUT, duration / 4):.2f}[m];"
            "[m][sc]sidechaincompress=threshold=0.01:ratio=20:attack=15:release=350:knee=2:makeup=1[duck];"
            f"[v][duck]amix=inputs=2:normalize=0:duration=first,atrim=0:{d}[out]"
        )
        inputs = ["-i", str(voice), "-stream_loop", "-1", "-i", str(music)]
    else:
        graph = f"{voice_chain}[out]"
        inputs = ["-i", str(voice)]
    try:
        _checked(
            [*inputs, "-filter_complex", graph, "-map", "[out]", "-c:a", "pcm_f32le", str(premix)],
            timeout,
        )
    except MixError:
        if not use_music:
            raise
        message = "The music could not be mixed in; the video is made without music."
        log.warning("[MUSIC] mixing failed; voice only")
        return replace(mix(voice, out, duration, None, timeout=timeout), message=message)
    try:
        first = measure(premix, peak=False)  # the gain; loudnorm measures the peaks itself
        if first.integrated <= -70:  # silence (no narration, no music): nothing to normalize
            _checked(["-i", str(premix), "-ar", str(RATE), "-c:a", "pcm_s16le", str(out)], timeout)
            return MixResult(out, measure(out), use_music, message)
        norm = _normalizer(premix, TARGET_LUFS - first.integrated)
        _checked(
            ["-i", str(premix), "-af", norm, "-ar", str(RATE), "-c:a", "pcm_s16le", str(out)],
            timeout,
        )
        final = measure(out)
    finally:
        premix.unlink(missing_ok=True)
    log.info(
        "[MIX] %s: %.1f LUFS, %.1f dBTP, music %s",
        out.name,
        final.integrated,
        final.true_peak,
        "yes" if use_music else "no",
    )
    return MixResult(out, final, use_music, message)
