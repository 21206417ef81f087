"""What a clip costs, per vendor, model, mode (Kling) or resolution (MiniMax), and length.

Prices checked on ``PRICES_CHECKED``. Sources:
- MiniMax-H3: MiniMax's pay-as-you-go list as quoted by reseller documentation on
  2026-10-24 (US$0.08/s at 768P, US$0.13/s at 2K; reference images: the first 5 free,
  first/last frames included, then US$0.04 each) and MiniMax's Chinese list (¥0.50/s, ¥0.80/s).
- MiniMax-Hailuo-2.3 / -Fast: MiniMax's Chinese per-clip list (¥2.0 / ¥4.0 for 768P 6 s / 10 s,
  ¥3.5 for 1080P 6 s; Fast ¥1.35 / ¥2.25 / ¥2.31), converted at ``CNY_PER_USD``. The 768P 6 s
  figure equals the US$0.28 global price used before. **Estimate** (converted).
- Kling: Kling's Chinese per-second list, the same for every video model (std ¥0.6/s,
  std with sound ¥0.8/s, pro ¥0.8/s, pro with sound ¥1.0/s), converted at ``CNY_PER_USD``.
  **Estimate**: Kling's global resource packs are priced per unit and resellers charge
  about US$0.10-0.20/s. Set KLING_COST_PER_CLIP / HAILUO_COST_PER_CLIP to your real price.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from foxpipe.providers.video_models import caps

PRICES_CHECKED = "2026-11-25"
CNY_PER_USD = 7.1


@dataclass(frozen=True)
class Price:
    usd_per_second: float = 0.0  # billed per generated second
    usd_per_clip: dict[int, float] = field(default_factory=dict)  # or per clip, by length
    estimate: bool = True  # converted or inferred, not a US$ list price read directly
    free_references: int = 0  # reference images included in the price (frames count too)
    usd_per_extra_reference: float = 0.0
    source: str = ""


def _cny_s(cny: float) -> float:
    return round(cny / CNY_PER_USD, 4)


_KLING_SRC = "Kling CN list, converted"
_KLING = {
    "std": Price(_cny_s(0.6), source=_KLING_SRC),
    "std+audio": Price(_cny_s(0.8), source=_KLING_SRC),
    "pro": Price(_cny_s(0.8), source=_KLING_SRC),
    "pro+audio": Price(_cny_s(1.0), source=_KLING_SRC),
}
_H3_SRC = "MiniMax pay-as-you-go list (US$), via reseller docs 2026-10-24"
_H3 = {
    "768P": Price(
        0.08, estimate=False, free_references=5, usd_per_extra_reference=0.04, source=_H3_SRC
    ),
    "2K": Price(
        0.13, estimate=False, free_references=5, usd_per_extra_reference=0.04, source=_H3_SRC
    ),
}


def _per_clip(table: dict[int, float]) -> dict[int, float]:
    return {d: round(v / CNY_PER_USD, 2) for d, v in table.items()}


_HAILUO_SRC = "MiniMax CN per-clip list, converted"
_HAILUO = {
    "768P": Price(usd_per_clip=_per_clip({6: 2.0, 10: 4.0}), source=_HAILUO_SRC),
    "1080P": Price(usd_per_clip=_per_clip({6: 3.5}), source=_HAILUO_SRC),
}
_HAILUO_FAST = {
    "768P": Price(usd_per_clip=_per_clip({6: 1.35, 10: 2.25}), source=_HAILUO_SRC),
    "1080P": Price(usd_per_clip=_per_clip({6: 2.31}), source=_HAILUO_SRC),
}

# (vendor, model) -> tier (Kling mode, MiniMax resolution) -> price
PRICES: dict[tuple[str, str], dict[str, Price]] = {
    **{
        ("kling", m): _KLING
        for m in (
            "kling-v2-5-turbo",
            "kling-v2-6",
            "kling-v3",
            "kling-v3-omni",
            "kling-video-o1",
            "kling-v2-1",
        )
    },
    ("hailuo", "MiniMax-H3"): _H3,
    ("hailuo", "MiniMax-Hailuo-2.3"): _HAILUO,
    ("hailuo", "MiniMax-Hailuo-2.3-Fast"): _HAILUO_FAST,
}


@dataclass(frozen=True)
class Quote:
    usd: float
    estimate: bool
    detail: str  # what was priced, for the UI and the log


def clip_price(
    vendor: str, model: str, tier: str, seconds: int, *, references: int = 0, audio: bool = False
) -> Quote:
    """US$ for one clip. ``tier`` is Kling's mode (std/pro) or MiniMax's resolution;
    ``references`` counts every image sent (frame included); ``audio`` asks Kling's
    sound-on price. A model missing from the table is priced like its vendor's default
    model and marked as an estimate."""
    c = caps(vendor, model)
    table = PRICES.get((vendor, c.model))
    known = table is not None
    if table is None:
        table = PRICES[(vendor, "kling-v2-5-turbo" if vendor == "kling" else "MiniMax-Hailuo-2.3")]
    key = tier
    if vendor == "kling":
        key = f"{tier if tier in ('std', 'pro') else 'std'}{'+audio' if audio and c.native_audio else ''}"
    elif key not in table:
        key = next(iter(table))
    p = table[key]
    if p.usd_per_clip:
        length = min(p.usd_per_clip, key=lambda d: (abs(d - seconds), d))
        usd = p.usd_per_clip[length]
    else:
        usd = p.usd_per_second * seconds
    extra = max(0, references - p.free_references) if p.usd_per_extra_reference else 0
    usd += extra * p.usd_per_extra_reference
    detail = f"{c.model} {key}, {seconds} s" + (f", {references} images" if references else "")
    return Quote(round(usd, 4), p.estimate or not known, detail)
