"""Narration: how fast the 20 lines of a 60 s Short are made.

- offline: the offline script for the default story, spoken by espeak-ng (the real binary),
  with word timings estimated from each line's audio (silencedetect on the bundled ffmpeg);
  prints wall time, the narration's total length and the ratio (audio seconds per second of work)
- realtime: the same 20 lines through the real openai SDK against the loopback fake of the
  Realtime WebSocket API (a tone per word), 3 lines at once: the client side's cost per line
- estimate: time of one word-timing estimate (ffmpeg start-up included)

Run: ``python benchmarks/narration.py``
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foxpipe.config import load_settings  # noqa: E402
from foxpipe.domain import narration, quiz  # noqa: E402
from foxpipe.domain.narration import LineStatus, NarrationLine  # noqa: E402
from foxpipe.domain.story import offline_story  # noqa: E402
from foxpipe.engine.narration import synthesize_all  # noqa: E402
from foxpipe.media.words import estimate_words  # noqa: E402
from foxpipe.providers.voice_offline import EspeakVoice  # noqa: E402
from foxpipe.providers.voice_realtime import RealtimeVoice  # noqa: E402
from tests.fakes.realtime_server import FakeRealtime  # noqa: E402


def lines() -> list[NarrationLine]:
    story = offline_story(quiz.defaults())
    return [NarrationLine(i, t) for i, t in enumerate(narration.offline_script(story, 60))]


async def run(model, voice: str, out: Path, concurrency: int) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    done = await synthesize_all(
        model, lines(), voice=voice, style="storyteller", out_dir=out, concurrency=concurrency
    )
    wall = time.perf_counter() - t0
    ready = [x for x in done if x.status == LineStatus.READY]
    return wall, sum(x.duration for x in ready), len(ready)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        words = sum(len(x.text.split()) for x in lines())
        print(f"script: 20 lines, {words} words for a 60 s Short")
        for conc in (1, 2):
            wall, audio, n = asyncio.run(run(EspeakVoice(), "en-us", root / f"off{conc}", conc))
            print(
                f"offline espeak-ng, {conc} at once: {n}/20 lines, {audio:.1f} s of speech in {wall:.2f} s "
                f"({audio / wall:.1f}x real time, {wall / n * 1000:.0f} ms per line)"
            )
        with FakeRealtime() as fake:
            s = load_settings({}, {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": fake.base_url})
            wall, audio, n = asyncio.run(run(RealtimeVoice(s), "marin", root / "rt", 3))
            print(
                f"realtime (loopback fake, real SDK), 3 at once: {n}/20 lines in {wall:.2f} s "
                f"({wall / n * 1000:.0f} ms per line, client side only)"
            )
        wav = next((root / "off1").glob("*.wav"))
        t0 = time.perf_counter()
        for _ in range(10):
            estimate_words("Rusty the little red fox wakes.", wav)
        print(f"word-timing estimate: {(time.perf_counter() - t0) / 10 * 1000:.0f} ms per line")


if __name__ == "__main__":
    main()
