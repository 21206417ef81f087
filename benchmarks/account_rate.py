"""The account's rate limit measured on the server's side of the wire: requests over the limit
by arrival time under CPU load, and the 429s a too-high setting costs before the app adopts the
account's real rate. Prints figures; run ``python benchmarks/account_rate.py``."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.openai_server import FakeOpenAI  # noqa: E402
from tests.test_account_rate import PERIOD, SCALE, most_in_a_window, registry, run_job  # noqa: E402


def scenario(setting: float, load: bool, latency: float, jitter: float) -> None:
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(2 if load else 0)
    ]
    try:
        with (
            FakeOpenAI(
                rate_limit=10,
                time_scale=SCALE,
                latency=latency,
                latency_jitter=jitter,
                ratelimit_headers=False,
            ) as fake,
            tempfile.TemporaryDirectory() as data,
        ):
            reg = registry(fake, Path(data), rate=setting)
            t0 = time.monotonic()
            try:
                run_job(reg)
                learned = reg.limiter.learned_rate
            finally:
                reg.shutdown()
            arrivals = [r.t for r in fake.of("images") if r.status != 429]
            print(
                f"setting {setting:g}/window, account 10/window ({PERIOD:.0f} s), load={load}: "
                f"{len(fake.of('images'))} requests, {fake.rate_limited} x 429, "
                f"most admitted in one window {most_in_a_window(arrivals, PERIOD)}, "
                f"learned {learned}, 20 images in {time.monotonic() - t0:.1f} s"
            )
    finally:
        for p in burners:
            p.kill()
            p.wait(5)


if __name__ == "__main__":
    scenario(10, True, 0.3, 0.0)
    scenario(20, False, 1.0, 0.5)
    scenario(20, True, 1.0, 0.5)
