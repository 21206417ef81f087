"""The queue of stories against the account's rate limit: 5 stories x 20 images, made one
after another by the queue's runner, through the real pipeline (JobRegistry -> run_slot ->
the OpenAI providers -> the real AsyncOpenAI client) against the loopback fake OpenAI
server in a process of its own (see benchmarks/generation.py), which enforces R images per
(scaled) minute with 429 + Retry-After, takes L (scaled) seconds per image and C (scaled)
seconds per chat answer (the story, the character sheet and the scene prompts: 3 per story).

Printed per case, in unscaled seconds:
- ``total``: from queuing the 5 stories to the last image stored
- ``prep``: from queuing to the first image request (writing the first story: unavoidable)
- ``bound``: ``prep`` + the best possible makespan of 100 images under R per minute and 10 in
  flight (``lower_bound``); ``ratio`` = total / bound (target <= 1.05: the next stories are
  written while the current one's images wait, so the limiter never idles between stories)
- ``wait k``: the reviewer's waiting time before story k is ready for review, against
  ``prep`` + the bound for its 20k images (stories are never interleaved, so story 1 is
  ready after about 20 images' worth of time, not 100)

``--quick`` runs one case. The last line is ``worst total/bound: X.XX``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from benchmarks.generation import (  # noqa: E402
    CAP,
    MIN_GUARD,
    fake_server,
    scaled_pipeline,
    settle,
    warm_up,
)
from foxpipe.channel import queue as story_queue  # noqa: E402
from foxpipe.config import Settings  # noqa: E402
from foxpipe.domain import quiz  # noqa: E402
from foxpipe.engine.jobs import JobRegistry  # noqa: E402
from foxpipe.engine.ratelimit import RateLimiter, lower_bound  # noqa: E402

STORIES, SCENES = 5, 20
GUARD = 0.12  # real seconds added to each window (see below)
TARGET_SECONDS = (
    40.0  # each case is scaled to take about this long (a shorter clock magnifies jitter)
)


def run(rate: float, latency: float, chat: float) -> dict[str, object]:
    ideal = lower_bound(STORIES * SCENES, rate, latency, max_concurrent=CAP)
    scale = min(1.0, TARGET_SECONDS / ideal)
    period = 60.0 * scale
    with (
        tempfile.TemporaryDirectory() as tmp,
        fake_server(
            rate_limit=rate,
            time_scale=1 / scale,
            latency=latency * scale,
            chat_latency=chat * scale,
            seed=7,
        ) as (fake, url),
    ):
        data = Path(tmp)
        settings = Settings(
            openai_api_key="sk-benchmark",
            openai_base_url=url,
            openai_use_reference=False,
            images_per_minute=rate,
            max_concurrent_images=CAP,
            image_timeout=180.0 * scale,
            image_retries=3,
            chat_timeout=60.0,
            max_images_per_story=10_000,
            daily_image_budget=1_000_000,
            data_dir=str(data),
        )
        # The app's guard is 0.5 s per minute; on a scaled clock the machine's scheduling jitter
        # (a 2-core machine shared with other work) is magnified, so at least GUARD real seconds.
        limiter = RateLimiter(rate, CAP, period=period, guard=max(period / 120, MIN_GUARD, GUARD))

        reg = JobRegistry(settings, scaled_pipeline(data, scale), limiter=limiter, period=period)
        try:
            fake.set(rate_limit=None, chat_latency=0.0)
            reg.run_on_worker(lambda pipe: warm_up(pipe.images, CAP, pipe), timeout=30)
            fake.set(rate_limit=rate, chat_latency=chat * scale)
            fake.reset()
            settle()
            story_queue.pause(reg)
            for n in range(STORIES):
                story_queue.add(reg, "bench", {**quiz.defaults(), "hero_name": f"Hero{n + 1}"})
            t0, m0 = time.time(), time.monotonic()
            story_queue.resume(reg)
            deadline = time.monotonic() + 900
            while not all(i.state == story_queue.READY for i in story_queue.items(reg)):
                if time.monotonic() > deadline:
                    raise RuntimeError("the queue did not finish")
                time.sleep(0.02)
            items = story_queue.items(reg)
            jobs = [reg.get(i.job_id) for i in items]
        finally:
            reg.shutdown()
        arrivals = sorted(t for t, reason, _ in fake.arrivals() if reason != "rate_limit")
        rejected = fake.rate_limited()
        if "--debug" in sys.argv:
            print(
                "429 at",
                [
                    round((t - m0) / scale, 1)
                    for t, reason, _ in fake.arrivals()
                    if reason == "rate_limit"
                ],
            )
            print("starts", [round((t - m0) / scale, 1) for t in arrivals])
            print(
                "ready",
                [round((i.ready_at - t0) / scale, 1) for i in items],
                "scheduled",
                [round((j.created - t0) / scale, 1) for j in jobs],
            )
    first_request = min(j.started_at for j in jobs if j.started_at)
    prep = (first_request - t0) / scale
    total = (max(j.finished_at for j in jobs) - t0) / scale
    bound = prep + ideal
    waits = [(i.ready_at - t0) / scale for i in items]
    wait_bounds = [
        prep + lower_bound(SCENES * (k + 1), rate, latency, max_concurrent=CAP)
        for k in range(STORIES)
    ]
    return {
        "rate": rate,
        "latency": latency,
        "chat": chat,
        "total": total,
        "prep": prep,
        "bound": bound,
        "ratio": total / bound,
        "waits": waits,
        "wait_bounds": wait_bounds,
        "requests": len(arrivals),
        "429s": rejected,
        "failed": sum(1 for j in jobs for s in j.slots if s.status.value == "failed"),
        "scale": scale,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one case")
    ap.add_argument("--debug", action="store_true", help="print when each request arrived")
    args = ap.parse_args()
    cases = (
        [(20.0, 20.0, 3.0)]
        if args.quick
        else [(20.0, 20.0, 3.0), (50.0, 30.0, 5.0), (10.0, 15.0, 3.0)]
    )
    print(f"{STORIES} stories x {SCENES} images through the queue; seconds unscaled")
    print(
        f"{'R/min':>5} {'L':>3} {'C':>3} {'total':>7} {'prep':>5} {'bound':>7} {'ratio':>5} {'429s':>4} "
        f"{'failed':>6}  reviewer's wait per story (bound)"
    )
    worst = 0.0
    for rate, latency, chat in cases:
        r = run(rate, latency, chat)
        worst = max(worst, float(r["ratio"]))  # type: ignore[arg-type]
        waits = " ".join(
            f"{w:.0f}({b:.0f})" for w, b in zip(r["waits"], r["wait_bounds"], strict=True)
        )  # type: ignore[arg-type]
        print(
            f"{rate:>5g} {latency:>3g} {chat:>3g} {r['total']:>7.1f} {r['prep']:>5.1f} {r['bound']:>7.1f} "
            f"{r['ratio']:>5.3f} {r['429s']:>4} {r['failed']:>6}  {waits}",
            flush=True,
        )
    print(f"worst total/bound: {worst:.3f}")


if __name__ == "__main__":
    main()
