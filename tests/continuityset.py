"""A labelled continuity set rendered with the embedded renderer: each hero's reference sheet
(ordinary and powered-up form) against the same hero in different scenes (on model) and against
variants that differ in one thing (off model): another species, another fur colour, another
outfit. Used by the tests and by benchmarks/continuity.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from foxpipe.domain.story import BEATS
from foxpipe.providers.offline import HeroLook, render_card, render_reference

BLUE, GREEN, RED = (40, 80, 200), (40, 160, 70), (200, 30, 40)
FURS = ((214, 92, 38), (128, 128, 135), (240, 240, 235), (110, 70, 40))
HEROES = (
    HeroLook(),  # the story's red fox
    HeroLook("rabbit", (128, 128, 135)),
    HeroLook("cat", (40, 40, 45), "cape", RED),
    HeroLook("bear", (110, 70, 40), "scarf", BLUE),
)
EXPECTED_DEFECT = {
    "species": "species",
    "fur": "fur or skin colour",
    "outfit": "outfit or accessory",
}


@dataclass
class Pair:
    reference: bytes
    image: bytes
    on_model: bool
    kind: str  # "same", "species", "fur" or "outfit"
    hero: HeroLook
    look: HeroLook
    scene: int
    size: str

    @property
    def expected_defect(self) -> str:
        return EXPECTED_DEFECT.get(self.kind, "")


def variants(h: HeroLook) -> list[tuple[str, HeroLook]]:
    """Two off-model variants per kind of difference."""
    species = [s for s in ("fox", "rabbit", "bear", "cat") if s != h.species]
    furs = [f for f in FURS if f != h.fur]
    out = [("species", HeroLook(s, h.fur, h.outfit, h.outfit_colour)) for s in species[:2]]
    out += [("fur", HeroLook(h.species, f, h.outfit, h.outfit_colour)) for f in furs[:2]]
    if h.outfit:
        out += [
            ("outfit", HeroLook(h.species, h.fur, "", h.outfit_colour)),
            ("outfit", HeroLook(h.species, h.fur, h.outfit, GREEN)),
        ]
    else:
        out += [
            ("outfit", HeroLook(h.species, h.fur, "scarf", BLUE)),
            ("outfit", HeroLook(h.species, h.fur, "hat", GREEN)),
        ]
    return out


def pairs(size: str = "1024x1536", heroes: tuple[HeroLook, ...] = HEROES) -> Iterator[Pair]:
    """72 pairs at the default size: per hero and form, 3 on-model scenes and 6 off-model."""
    for hero in heroes:
        for powered in (False, True):
            reference = render_reference(size, powered, hero)
            scenes = (12, 15, 19) if powered else (2, 5, 8)
            cases = [("same", hero, n) for n in scenes]
            cases += [(kind, look, scenes[i % 3]) for i, (kind, look) in enumerate(variants(hero))]
            for kind, look, n in cases:
                image = render_card(
                    n, BEATS[n - 1].name, "The hero in this scene.", size, powered, n * 7, look
                )
                yield Pair(reference, image, kind == "same", kind, hero, look, n, size)


@dataclass
class Scores:
    tp: int = 0  # off model, found off model
    fp: int = 0  # on model, called off model
    fn: int = 0  # off model, called on model
    tn: int = 0

    def add(self, truly_off: bool, called_off: bool) -> None:
        if truly_off and called_off:
            self.tp += 1
        elif called_off:
            self.fp += 1
        elif truly_off:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
