"""The offline continuity check on a labelled set: precision, recall, per-defect accuracy, speed.

The set (tests/continuityset.py) is rendered locally: each of 4 heroes' reference sheets (the
ordinary and the powered-up form) against the same hero in 3 scenes (on model) and against 6
variants that differ in one thing (off model: 2 other species, 2 other fur colours, 2 outfit
changes). "Off model" is the positive class:

- precision: of the images the check called off model, the share that really are
- recall: of the off-model images, the share the check caught
- per-defect accuracy: of the off-model images of one kind, the share whose verdict names
  that kind's defect (species, fur or skin colour, outfit or accessory)
- ms per check: wall time of one check (image features + comparison; the reference's
  features are cached per reference, as in the app)

Then the embedded story as the app makes it offline: the default character sheet, every scene
1-20 drawn by the embedded renderer for two different prompts, each checked against the
character sheet's text (no reference sheet offline): how many on-model images the check flags
(each such flag costs one free automatic regeneration in "fix" mode).

Also prints the estimated cost per check and per story of the OpenAI check.
``--sizes`` picks the image sizes (default: the app's portrait 1024x1536, and landscape).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from foxpipe.domain import prompts  # noqa: E402
from foxpipe.domain.continuity import reference_text  # noqa: E402
from foxpipe.domain.models import SCENE_COUNT  # noqa: E402
from foxpipe.domain.story import BEATS  # noqa: E402
from foxpipe.providers.offline import OfflineImages  # noqa: E402
from foxpipe.providers.vision_offline import IMAGE_FEATURES, OfflineVision  # noqa: E402
from foxpipe.providers.vision_openai import TOKEN_PRICES, cost_per_check, cost_per_story  # noqa: E402
from tests.continuityset import Scores, pairs  # noqa: E402

RECHECK_MS: list[float] = []  # the same image checked a second time, every size
ALL_FIRST_MS: list[float] = []  # its first check, every size


def run(size: str, verbose: bool = False) -> tuple[Scores, dict[str, list[bool]], list[float], int]:
    checker = OfflineVision()
    scores = Scores()
    per_kind: dict[str, list[bool]] = defaultdict(list)
    times: list[float] = []
    again: list[float] = []
    n = 0
    for p in pairs(size):
        checker.check_sync(p.reference, "", p.image, p.scene)  # warm the reference cache
        IMAGE_FEATURES.clear()  # time the image's own measuring, as on its first check
        t0 = time.perf_counter()
        v = checker.check_sync(p.reference, "", p.image, p.scene)
        times.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        checker.check_sync(p.reference, "", p.image, p.scene)  # checked again: features kept
        again.append((time.perf_counter() - t0) * 1000)
        n += 1
        scores.add(not p.on_model, not v.on_model)
        if not p.on_model:
            per_kind[p.kind].append(p.expected_defect in v.defects)
        if verbose and (v.on_model != p.on_model):
            print(
                f"  miss: {p.kind} {p.hero.species}->{p.look.species} scene {p.scene}: {v.defects} {v.note}"
            )
    RECHECK_MS.extend(again)
    ALL_FIRST_MS.extend(times)
    return scores, per_kind, times, n


async def story_false_alarms(size: str) -> tuple[int, int, list[str]]:
    sheet = prompts.character_sheet({"hero_name": "Rusty"})
    images, checker = OfflineImages(delay=0), OfflineVision()
    flagged, n = [], 0
    for number in range(1, SCENE_COUNT + 1):
        for action in ("Rusty runs.", "Rusty sits and thinks."):
            img = await images.generate(
                f"{sheet}\nSCENE: Scene {number} ({BEATS[number - 1].name}). {action}",
                size,
                scene_number=number,
            )
            v = await checker.check(None, reference_text(sheet, number), img.data, number)
            n += 1
            if not v.on_model:
                flagged.append(f"scene {number} ({', '.join(v.defects)})")
    return len(flagged), n, flagged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["1024x1536", "1536x1024"])
    ap.add_argument("--verbose", action="store_true", help="list every wrong call")
    args = ap.parse_args()
    print(
        f"{'size':>10} {'pairs':>5} {'precision':>9} {'recall':>6} {'species':>7} {'fur':>5} {'outfit':>6} "
        f"{'ms/check':>8} {'p95 ms':>6}  (tp fp fn tn)"
    )
    for size in args.sizes:
        s, kinds, times, n = run(size, args.verbose)
        acc = {k: sum(v) / len(v) for k, v in kinds.items()}
        p95 = sorted(times)[int(0.95 * (len(times) - 1))]
        print(
            f"{size:>10} {n:>5} {s.precision:>9.3f} {s.recall:>6.3f} {acc.get('species', 0):>7.2f} "
            f"{acc.get('fur', 0):>5.2f} {acc.get('outfit', 0):>6.2f} {statistics.median(times):>8.0f} {p95:>6.0f}"
            f"  ({s.tp} {s.fp} {s.fn} {s.tn})"
        )
    first, again = statistics.median(ALL_FIRST_MS), statistics.median(RECHECK_MS)
    print(
        f"the same image checked again (its features kept): {again:.1f} ms median, "
        f"{first / again:.0f}x less than its first check ({first:.0f} ms)"
    )
    print()
    for size in args.sizes:
        k, n, which = asyncio.run(story_false_alarms(size))
        print(
            f"embedded story at {size}: {k} of {n} on-model images flagged"
            + (f": {'; '.join(which)}" if which else "")
        )
    print()
    for model in TOKEN_PRICES:
        print(
            f"OpenAI check at {model}: ~${cost_per_check(model):.4f} per check, "
            f"~${cost_per_story(model, SCENE_COUNT):.3f} per story of {SCENE_COUNT} images "
            f"(~${cost_per_story(model, SCENE_COUNT, fix_rate=0.25):.3f} with a quarter fixed and checked again)"
        )


if __name__ == "__main__":
    main()
