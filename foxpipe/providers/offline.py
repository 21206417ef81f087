"""The embedded default: a deterministic story writer and a local Pillow image renderer.
No keys, no network; the whole flow runs on these."""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import io
import re
import textwrap
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from foxpipe.domain import narration, prompts, story
from foxpipe.domain.models import Story
from foxpipe.providers.base import Capability, ImageResult

BEAT_HUES = {
    "Underdog setup": 0.62,
    "Discovery": 0.50,
    "First failure": 0.70,
    "Training montage": 0.30,
    "Transformation": 0.80,
    "Power display": 0.08,
    "Challenge, justice and redemption": 0.97,
    "Triumph": 0.13,
}
_SCENE_BEAT = re.compile(r"SCENE: Scene \d+ \(([^)\n]{1,80})\)")


def beat_hue(beat: str) -> float:
    """The power fantasy's hues as before; other beats get a stable hue from their name."""
    if beat in BEAT_HUES:
        return BEAT_HUES[beat]
    return int(hashlib.sha256(beat.encode()).hexdigest()[:6], 16) / 0xFFFFFF


class OfflineText:
    name = "offline"
    capabilities = frozenset({Capability.FREE})

    def __init__(self, seconds: float = 60.0, words_per_second: float = 2.5):
        self.seconds = seconds  # the narration length a rewritten line is sized for
        self.words_per_second = words_per_second

    async def write_story(self, answers: dict[str, str]) -> Story:
        return story.offline_story(answers)

    async def rewrite_scene(self, s: Story, number: int, note: str = "") -> str:
        return story.offline_rewrite(s, number, note)

    async def character_sheet(self, answers: dict[str, str]) -> str:
        return prompts.character_sheet(answers)

    async def create_prompts(self, s: Story, sheet: str) -> list[str]:
        return [prompts.visual_prompt(sc) for sc in s.scenes]

    async def write_narration(
        self, s: Story, seconds: float = 60.0, style: str = "storyteller"
    ) -> list[str]:
        return narration.offline_script(s, seconds, self.words_per_second)

    async def rewrite_narration_line(
        self, s: Story, lines: list[str], number: int, note: str = ""
    ) -> str:
        if not 1 <= number <= len(s.scenes):
            from foxpipe.providers.base import ProviderError

            raise ProviderError(f"There is no scene {number}.", "fatal")
        budget = narration.words_budget(self.seconds, len(s.scenes), self.words_per_second)
        return narration.offline_rewrite(s, lines, number, budget, note)


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def parse_size(size: str) -> tuple[int, int]:
    w, h = size.lower().split("x")
    return int(w), int(h)


def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=px)


FOX_FUR = (214, 92, 38)
AURA = (0.08, 0.8, 1.0)  # hue, saturation, value of the powered-up glow
SPECIES = ("fox", "rabbit", "bear", "cat")


@dataclass(frozen=True)
class HeroLook:
    """What the embedded renderer draws as the hero. The default is the story's red fox;
    other looks exist so the continuity check can be measured on known differences."""

    species: str = "fox"  # one of SPECIES
    fur: tuple[int, int, int] = FOX_FUR
    outfit: str = ""  # "", "scarf", "cape" or "hat"
    outfit_colour: tuple[int, int, int] = (40, 80, 200)


def draw_hero(
    draw: ImageDraw.ImageDraw, fx: int, fy: int, u: int, look: HeroLook, powered: bool
) -> None:
    """The hero standing on (fx, fy), facing right, in units of ``u`` pixels."""
    if powered:
        for ring in range(4, 0, -1):
            rr = u * (5 + ring * 2)
            draw.ellipse(
                [fx - rr, fy - rr - u * 3, fx + rr, fy + rr - u * 3],
                outline=_rgb(*AURA),
                width=u // 2,
            )
    fur, white, dark = look.fur, (250, 250, 245), (30, 20, 10)
    if look.species == "rabbit":
        draw.ellipse([fx - 3 * u, fy - 5 * u, fx + 3 * u, fy], fill=fur)  # body
        draw.ellipse([fx + u, fy - 8 * u, fx + 5 * u, fy - 4 * u], fill=fur)  # head
        draw.ellipse(
            [fx + u + u // 2, fy - 14 * u, fx + 2 * u + u // 2, fy - 7 * u], fill=fur
        )  # long ears
        draw.ellipse([fx + 3 * u, fy - 14 * u, fx + 4 * u, fy - 7 * u], fill=fur)
        draw.ellipse([fx - 4 * u, fy - 4 * u, fx - 2 * u, fy - 2 * u], fill=white)  # puff tail
        draw.ellipse([fx + 3 * u, fy - 7 * u, fx + 4 * u, fy - 6 * u], fill=dark)  # eye
    elif look.species == "bear":
        draw.ellipse([fx - 6 * u, fy - 6 * u, fx + 5 * u, fy], fill=fur)  # body
        draw.ellipse([fx + 2 * u, fy - 10 * u, fx + 8 * u, fy - 4 * u], fill=fur)  # head
        draw.ellipse([fx + 2 * u, fy - 11 * u, fx + 4 * u, fy - 9 * u], fill=fur)  # round ears
        draw.ellipse([fx + 6 * u, fy - 11 * u, fx + 8 * u, fy - 9 * u], fill=fur)
        draw.ellipse(
            [fx + 6 * u, fy - 7 * u, fx + 9 * u, fy - 5 * u], fill=(200, 170, 130)
        )  # snout
        draw.ellipse([fx + 5 * u, fy - 9 * u, fx + 6 * u, fy - 8 * u], fill=dark)  # eye
    elif look.species == "cat":
        draw.ellipse([fx - 4 * u, fy - 3 * u, fx + 3 * u, fy], fill=fur)  # body
        draw.ellipse([fx + u, fy - 7 * u, fx + 5 * u, fy - 3 * u], fill=fur)  # round head
        draw.polygon(
            [(fx + u, fy - 5 * u), (fx + u, fy - 8 * u), (fx + 3 * u, fy - 6 * u)], fill=fur
        )  # ears
        draw.polygon(
            [(fx + 3 * u, fy - 6 * u), (fx + 5 * u, fy - 8 * u), (fx + 5 * u, fy - 5 * u)], fill=fur
        )
        draw.line(
            [
                (fx - 4 * u, fy - 2 * u),
                (fx - 6 * u, fy - 4 * u),
                (fx - 6 * u, fy - 8 * u),
                (fx - 5 * u, fy - 9 * u),
            ],
            fill=fur,
            width=u,
        )  # thin raised tail
        draw.ellipse([fx + 3 * u, fy - 6 * u, fx + 4 * u, fy - 5 * u], fill=(90, 200, 60))  # eye
    else:  # the fox
        draw.ellipse([fx - 4 * u, fy - 4 * u, fx + 4 * u, fy], fill=fur)  # body
        draw.ellipse([fx + 2 * u, fy - 8 * u, fx + 6 * u, fy - 4 * u], fill=fur)  # head
        draw.polygon(
            [(fx + 2 * u, fy - 7 * u), (fx + 3 * u, fy - 10 * u), (fx + 4 * u, fy - 7 * u)],
            fill=fur,
        )
        draw.polygon(
            [(fx + 4 * u, fy - 7 * u), (fx + 5 * u, fy - 10 * u), (fx + 6 * u, fy - 7 * u)],
            fill=fur,
        )
        draw.polygon(
            [(fx - 4 * u, fy - 2 * u), (fx - 9 * u, fy - 6 * u), (fx - 7 * u, fy - u)], fill=fur
        )  # tail
        draw.ellipse(
            [fx - 9 * u, fy - 6 * u - u // 2, fx - 7 * u, fy - 4 * u - u // 2], fill=white
        )  # tail tip
        draw.ellipse([fx + 4 * u, fy - 7 * u, fx + 5 * u, fy - 6 * u], fill=dark)  # eye
    c = look.outfit_colour
    if look.outfit == "scarf":
        draw.polygon(
            [
                (fx + u, fy - 5 * u),
                (fx + 3 * u, fy - 3 * u),
                (fx + 4 * u, fy - 4 * u),
                (fx + 2 * u, fy - 6 * u),
            ],
            fill=c,
        )
        draw.rectangle([fx + u, fy - 4 * u, fx + 2 * u, fy - u], fill=c)  # the loose end
    elif look.outfit == "cape":
        draw.polygon(
            [
                (fx + 2 * u, fy - 5 * u),
                (fx - 5 * u, fy - 4 * u),
                (fx - 4 * u, fy - u),
                (fx + u, fy - 2 * u),
            ],
            fill=c,
        )
    elif look.outfit == "hat":
        draw.rectangle(
            [fx + u + u // 2, fy - 9 * u, fx + 6 * u + u // 2, fy - 8 * u], fill=c
        )  # brim
        draw.rectangle([fx + 2 * u + u // 2, fy - 12 * u, fx + 5 * u + u // 2, fy - 9 * u], fill=c)


def render_reference(size: str, powered: bool = False, look: HeroLook | None = None) -> bytes:
    """A hero reference sheet as the embedded renderer draws it: the hero alone, large, on a
    plain pale-blue background (the powered-up form with its glow)."""
    w, h = parse_size(size)
    img = Image.new("RGB", (w, h), (196, 212, 226))
    draw = ImageDraw.Draw(img)
    u = max(6, min(w, h) // (30 if powered else 22))
    draw_hero(draw, w // 2, int(h * 0.68), u, look or HeroLook(), powered)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=3)
    return buf.getvalue()


def render_card(
    scene_number: int,
    beat: str,
    text: str,
    size: str,
    powered: bool,
    variant: int = 0,
    look: HeroLook | None = None,
) -> bytes:
    """An illustrated card: sky, hills, the hero's silhouette (with an aura once powered up),
    and the scene's number, beat and text. Distinct per scene, same hero in all; ``variant``
    (from the prompt) moves the camera, so a regenerated image looks different; ``look``
    draws another hero (species, fur, outfit), the default being the story's red fox."""
    w, h = parse_size(size)
    scene_shift = variant % 10
    hue = beat_hue(beat) + scene_number * 0.011
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    top, bottom = _rgb(hue, 0.55, 0.35), _rgb(hue + 0.05, 0.35, 0.95)
    for y in range(0, h, 4):
        t = y / h
        col = tuple(int(top[i] + (bottom[i] - top[i]) * t) for i in range(3))
        draw.rectangle([0, y, w, y + 4], fill=col)
    # Sun or moon moves across the sky with the story.
    cx = int(w * (0.15 + 0.7 * ((scene_number - 1 + scene_shift * 3) % 20) / 19))
    cy = int(h * 0.18)
    r = int(min(w, h) * 0.07)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_rgb(0.13, 0.4, 1.0))
    # Hills.
    ground = int(h * 0.62)
    for k, shade in enumerate((0.45, 0.30)):
        off = (scene_number * 97 + k * 211) % w
        pts = [
            (x, ground + k * 40 + int(30 * ((x + off) % 300) / 300)) for x in range(0, w + 50, 50)
        ]
        draw.polygon([(0, h), *pts, (w, h)], fill=_rgb(hue + 0.3, 0.5, shade))
    # The hero: a fox-like silhouette, always the same shape and colour.
    fx = int(w * (0.3 + 0.4 * ((scene_number * 7 + scene_shift * 3) % 10) / 10))
    fy = ground
    u = max(8, min(w, h) // 28)
    draw_hero(draw, fx, fy, u, look or HeroLook(), powered)
    # Caption panel.
    pad = int(w * 0.05)
    panel_top = int(h * 0.70)
    draw.rounded_rectangle(
        [pad, panel_top, w - pad, h - pad], radius=pad // 2, fill=(255, 255, 255)
    )
    tw = min(w, int(h * 0.75))  # text scale: the width in portrait, less in a landscape frame
    big, small = _font(max(14, tw // 16)), _font(max(10, tw // 34))
    draw.text((pad * 2, panel_top + pad // 2), f"Scene {scene_number}", fill=(40, 40, 40), font=big)
    draw.text(
        (pad * 2, panel_top + pad // 2 + tw // 12), beat, fill=_rgb(hue, 0.7, 0.6), font=small
    )
    chars = max(20, int((w - 4 * pad) / (tw / 34 * 0.55)))
    step = int(tw / 34 * 1.35)
    y = panel_top + pad // 2 + tw // 12 + int(tw / 34 * 1.8)
    for line in textwrap.wrap(text, chars)[:6]:
        if y + step > h - pad:  # keep the text inside the panel
            break
        draw.text((pad * 2, y), line, fill=(60, 60, 60), font=small)
        y += step
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=3)
    return buf.getvalue()


class OfflineImages:
    """Renders a real PNG per scene after a small delay, so progress is visible."""

    name = "offline"
    supports_reference = False
    capabilities = frozenset({Capability.FREE})

    def __init__(self, delay: float = 0.4):
        self.delay = delay

    async def generate(
        self,
        prompt: str,
        size: str,
        *,
        scene_number: int = 0,
        references: list[bytes] | None = None,
    ) -> ImageResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        number = scene_number or 1
        # The renderer sees only the prompt: the beat and the hero's form are read from it
        # (the standardized prompt names the form the structure gives this scene).
        found = _SCENE_BEAT.search(prompt)
        beat = found.group(1) if found else story.BEATS[number - 1].name
        text = prompt.split("SCENE:", 1)[-1].split("\n", 1)[0].strip()
        text = text.split(") ", 1)[-1] if text.startswith("Scene ") else text
        variant = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
        powered = prompts.prompt_form(prompt, number) == "powered"
        data = await asyncio.to_thread(render_card, number, beat, text, size, powered, variant)
        digest = hashlib.sha256(data).hexdigest()[:12]
        return ImageResult(
            data=data, model="offline-renderer", path="offline", usage={"sha": digest}
        )
