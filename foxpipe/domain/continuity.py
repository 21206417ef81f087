"""Continuity: the verdict on one image compared with the hero's reference, and what to do
with it. Pure data and rules; the checkers live in foxpipe.providers (vision_*)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from foxpipe.domain import prompts
from foxpipe.domain.plain import plain

DEFECTS: tuple[str, ...] = (
    "species",
    "fur or skin colour",
    "markings",
    "eyes",
    "outfit or accessory",
    "size and proportions",
    "wrong form",
)

MODES = ("off", "flag", "fix")
DEFAULT_MODE = "fix"
DEFAULT_THRESHOLD = 70

Decision = Literal["accept", "flag", "fix"]

# What each defect asks of the next image, for the automatic fix.
DEFECT_FIX: dict[str, str] = {
    "species": "The hero must be exactly the species of the character sheet and reference, with its body shape.",
    "fur or skin colour": "Use exactly the hero's fur or skin colours from the character sheet and reference.",
    "markings": "Keep every marking exactly as on the reference: same patches, stripes, tips and notches.",
    "eyes": "Give the hero the same eye colour and eye shape as the reference.",
    "outfit or accessory": "Keep the hero's outfit and accessories exactly as on the reference; add none, remove none.",
    "size and proportions": "Keep the hero's size and body proportions exactly as on the reference.",
    "wrong form": "Show the hero in the form this scene needs (ordinary before the power awakens, powered-up after).",
}


@dataclass
class Verdict:
    """One image's continuity verdict. ``status`` "not_checked" means the check itself failed
    (``error`` says why): such a verdict never blocks approval and never triggers a fix."""

    on_model: bool = True
    score: int = 100  # 0-100: how closely the image matches the reference
    defects: list[str] = field(default_factory=list)  # a subset of DEFECTS
    note: str = ""  # one line for the reviewer
    checker: str = ""  # which checker gave it ("offline", or the model name)
    status: str = "checked"  # "checked" | "not_checked"
    error: str = ""
    seconds: float = 0.0  # how long the check took
    cost_usd: float = 0.0  # the check's estimated cost

    def __post_init__(self) -> None:
        self.score = max(0, min(100, int(round(self.score))))
        self.defects = clean_defects(self.defects)
        self.note = " ".join(str(self.note).split())[:300]
        if self.status not in ("checked", "not_checked"):
            self.status = "not_checked"

    @property
    def checked(self) -> bool:
        return self.status == "checked"

    @classmethod
    def not_checked(cls, checker: str, error: str, seconds: float = 0.0) -> Verdict:
        return cls(
            on_model=True,
            score=0,
            defects=[],
            note="Not checked.",
            checker=checker,
            status="not_checked",
            error=" ".join(str(error).split())[:300],
            seconds=seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Verdict:
        """A verdict from stored data; unknown keys are ignored, missing ones take defaults."""
        if not isinstance(d, dict):
            return cls.not_checked("", "no verdict stored")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        try:
            return cls(**known)
        except (TypeError, ValueError) as e:
            return cls.not_checked(str(d.get("checker", "")), f"stored verdict unreadable: {e}")

    def cli_dict(self, image: str) -> dict[str, Any]:
        """The command line's JSON line; a failed check has null on_model and score."""
        out: dict[str, Any] = {
            "image": image,
            "on_model": self.on_model,
            "score": self.score,
            "defects": list(self.defects),
            "note": self.note,
        }
        if not self.checked:
            out.update(on_model=None, score=None, status=self.status, error=self.error)
        return out

    def badge(self) -> str:
        """One short line for a gallery tile."""
        if not self.checked:
            return "Not checked"
        if self.on_model and not self.defects:
            return f"On model · {self.score}"
        what = ", ".join(self.defects) if self.defects else "looks different"
        return f"{'On model' if self.on_model else 'Off model'} · {self.score}: {what}"


def clean_defects(defects: Any) -> list[str]:
    """The known defects among ``defects`` (case-insensitive), in DEFECTS order, no repeats."""
    if not isinstance(defects, (list, tuple, set)):
        return []
    wanted = {str(d).strip().lower() for d in defects}
    return [d for d in DEFECTS if d in wanted]


def parse_mode(value: str | None) -> str:
    value = (value or "").strip().lower()
    return value if value in MODES else DEFAULT_MODE


def decide(
    verdict: Verdict, mode: str, threshold: int = DEFAULT_THRESHOLD, already_fixed: bool = False
) -> Decision:
    """What to do with an image once its verdict is in.

    - ``off``, or a check that failed: accept (the reviewer decides, nothing is blocked).
    - an image at or above the threshold and on model: accept.
    - below it (or off model): ``flag`` shows the verdict; ``fix`` regenerates once with the
      defects in the prompt, and only once: an image that already is a fix is flagged instead.
    """
    mode = parse_mode(mode)
    if mode == "off" or not verdict.checked:
        return "accept"
    if verdict.on_model and verdict.score >= threshold:
        return "accept"
    if mode == "fix" and not already_fixed:
        return "fix"
    return "flag"


def fix_text(defects: list[str], note: str = "") -> str:
    """The defects as a fix for the next prompt (added like a reviewer's feedback)."""
    parts = [DEFECT_FIX[d] for d in clean_defects(defects)]
    note = prompts.sanitize(" ".join(str(note).split()))[:200]
    if not parts:
        parts.append(
            "Match the hero's reference exactly: same species, colours, markings, outfit and proportions."
        )
    if note:
        parts.append(f"Continuity check: {note}")
    return " ".join(parts)


def review_reasons(verdict: Verdict) -> list[str]:
    """The reviewer's rejection reasons (prompts.REJECT_REASONS) to preselect for a flagged
    image: the hero's look for any character defect."""
    if not verdict.checked or not verdict.defects:
        return []
    return ["Hero looks different"]


# ---------------------------------------------------------------------------- references

FORMS = ("base", "powered")


def form_for(scene_number: int, form: str = "") -> str:
    """The hero's form in a scene: ``form`` when the story's structure said it (see
    ``structures.form_for``: only a structure with a second form has "powered" scenes), else
    the power fantasy's rule (the ordinary hero for 1-10, the powered-up form after)."""
    if form in ("base", "powered"):
        return form
    return "powered" if scene_number >= (prompts.TRANSFORMED_FROM or 11) else "base"


def reference_path(references: dict[str, str], scene_number: int, form: str = "") -> str:
    """The reference sheet a scene is checked against: its form's sheet (the hero's as a
    fallback); '' when references were skipped (then the character sheet text is the reference)."""
    return references.get(form_for(scene_number, form)) or references.get("base") or ""


def reference_text(character_sheet: str, scene_number: int, form: str = "") -> str:
    """The part of the character sheet that describes the hero in this scene's form."""
    sheet = character_sheet or ""
    hero = _section(sheet, "HERO")
    if form_for(scene_number, form) == "powered":
        powered = _section(sheet, "POWERED-UP FORM")
        return " ".join(p for p in (hero, powered) if p) or sheet
    return hero or sheet


_SECTION = re.compile(r"(HERO|POWERED-UP FORM(?: \([^)]*\))?|RIVAL|SETTING|STYLE):\s*")


def _section(sheet: str, name: str) -> str:
    parts = _SECTION.split(sheet)
    # parts = [before, name1, text1, name2, text2, ...]
    for i in range(1, len(parts) - 1, 2):
        if parts[i].split(" (")[0] == name:
            return f"{parts[i]}: {parts[i + 1].strip()}"
    return ""
