"""Visual prompts: one character sheet for the whole story, applied to every scene,
and sanitization that gets progressively safer on content-policy rejections."""

from __future__ import annotations

import re
from collections.abc import Mapping

from foxpipe.domain import quiz
from foxpipe.domain import structures as structs
from foxpipe.domain.models import SCENE_COUNT, Scene

# The power fantasy's first powered-up scene, for older callers; use structures.form_for.
TRANSFORMED_FROM = structs.POWER_FANTASY.second_form_from

STYLE_NOTES = {
    "Pixar-style 3D": "stylised 3D animated film look, soft global illumination, expressive eyes",
    "Anime": "anime illustration, clean line art, cel shading, vivid colours",
    "Watercolour storybook": "watercolour children's-book illustration, soft edges, paper texture",
    "Cinematic realistic": "cinematic wildlife photography look, shallow depth of field, natural light",
}

ELEMENT_COLOURS = {
    "fire": "glowing ember-orange",
    "ice": "frosty pale-blue",
    "lightning": "crackling electric-violet",
    "wind": "swirling silver-white",
    "water": "shimmering aqua",
}


def character_sheet(answers: dict[str, str]) -> str:
    """One fixed description of the cast and look, written once and reused in all 20 prompts.
    What it names follows the story's structure: the powered-up form only where the structure
    has one, the rival, friend, bully or the one to rescue as the structure's cast."""
    a = answers
    structure = structs.get(a)
    species = quiz.hero_species(a) or "Red Fox"
    name = a.get("hero_name", "the hero")
    look = a.get("look") or "bright amber eyes, a white-tipped tail, a small notch in the left ear"
    style = a.get("style", "Pixar-style 3D")
    aspect = "vertical 9:16 portrait" if quiz.is_portrait(a) else "horizontal 16:9 landscape"
    sheet = (
        f"HERO: {name}, a young {species.lower()}, small and slender; {look}. "
        f"Same face, markings, proportions and colours in every image. "
    )
    if structure.second_form_from is not None:
        power = quiz.power_text(a)
        aura = ELEMENT_COLOURS.get(a.get("element", "").lower(), "soft golden")
        sheet += (
            f"POWERED-UP FORM (scenes {structure.second_form_from}-{SCENE_COUNT}): the same {name}, "
            f"standing tall, with a {aura} aura of {power} outlining the body; markings unchanged. "
        )
    if structure is structs.POWER_FANTASY:
        sheet += (
            f"RIVAL: {quiz.rival_text(a)}, larger than the hero, consistent look in every image. "
        )
    else:
        sheet += f"CAST: {quiz.cast_text(a)}; consistent look in every image. "
    return sheet + (
        f"SETTING: {a.get('setting', 'Enchanted forest').lower()}. "
        f"MOOD: {structure.visual_notes} "
        f"STYLE: {STYLE_NOTES.get(style, style)}; warm, consistent palette; {aspect} composition; "
        "no text, letters or watermarks in the image."
    )


def visual_prompt(scene: Scene) -> str:
    """The scene as a picture to draw (the offline prompt writer; a model can do better)."""
    return f"Scene {scene.number} ({scene.beat}). {scene.text}"


FORM_LINES = {
    "powered": "SHOW THE HERO IN ITS POWERED-UP FORM.",
    "base": "SHOW THE HERO IN ITS ORDINARY FORM (BEFORE THE POWER AWAKENS).",
}
SAME_HERO_LINE = "SHOW THE HERO EXACTLY AS IN THE CHARACTER SHEET."


def standardize_prompts(
    prompts: list[str],
    sheet: str,
    structure: structs.Structure | Mapping[str, object] | str | None = None,
) -> list[str]:
    """Put the same character sheet in front of every prompt, so the hero stays the same, and
    say which form of the hero the scene shows (structures with a second form only)."""
    s = structs.get(structure)
    out = []
    for i, p in enumerate(prompts, 1):
        line = FORM_LINES[structs.form_for(s, i)] if s.has_second_form else SAME_HERO_LINE
        out.append(f"{sheet}\n{line}\nSCENE: {p.strip()}")
    return out


_SHEET_SECOND_FORM = re.compile(r"POWERED-UP FORM \(scenes (\d{1,2})-")


def prompt_form(prompt: str, scene_number: int) -> structs.Form:
    """The hero's form a prompt asks for: its form line (written from ``form_for``) when it has
    one, else (a shortened prompt) from the scenes the character sheet in it gives the second form."""
    if FORM_LINES["powered"] in prompt:
        return "powered"
    if FORM_LINES["base"] in prompt or SAME_HERO_LINE in prompt:
        return "base"
    declared = _SHEET_SECOND_FORM.search(prompt)
    if declared is None:
        return "base"
    return "powered" if scene_number >= int(declared.group(1)) else "base"


# Phrases that trip image safety systems, with a calmer way to say the same picture.
REPLACEMENTS: tuple[tuple[str, str], ...] = (
    (r"\bbeats? up\b|\bbeat(?:s|ing)? (?:him|her|them|it) up\b", "overcomes"),
    (r"\bkill(?:s|ed|ing)?\b", "defeats"),
    (r"\bmurder(?:s|ed|ing)?\b", "stops"),
    (r"\bdeath\b|\bdead\b|\bdies\b|\bdying\b", "fallen asleep"),
    (r"\bblood(?:y|ied)?\b|\bgore\b|\bwounds?\b", "dust"),
    (r"\bfight(?:s|ing)?\b|\bbattles?\b|\bbrawl\b", "faces"),
    (r"\battack(?:s|ed|ing)?\b", "confronts"),
    (r"\bpunch(?:es|ed)?\b|\bkick(?:s|ed)?\b|\bstrikes?\b", "pushes back"),
    (r"\b(?:sword|knife|knives|gun|rifle|spear|weapon)s?\b", "glowing staff"),
    (r"\bhunter(?:s)?\b", "trapper"),
    (r"\bclaws? (?:at|into)\b", "reaches toward"),
    (r"\bviolent(?:ly)?\b|\bbrutal(?:ly)?\b|\bsavage(?:ly)?\b", "dramatic"),
    (r"\bterrif(?:ying|ied)\b|\bhorrif(?:ying|ied)\b", "startled"),
    (r"\bbites?\b", "snaps at the air near"),
)
_COMPILED = tuple((re.compile(p, re.I), r) for p, r in REPLACEMENTS)


def sanitize(text: str) -> str:
    for pattern, repl in _COMPILED:
        text = pattern.sub(repl, text)
    return text


def core_action(scene_text: str, limit: int = 160) -> str:
    """The scene's first sentence, sanitized and shortened: what the picture must show."""
    first = re.split(r"(?<=[.!?])\s", scene_text.strip(), maxsplit=1)[0]
    first = sanitize(first)
    return first if len(first) <= limit else first[: limit - 1].rsplit(" ", 1)[0] + "…"


def sanitize_prompt(
    prompt: str, level: int, sheet: str = "", scene_text: str = "", edited: bool = False
) -> str:
    """Level 0: the prompt as written (always table-sanitized); 1: plus a family-friendly
    framing; 2: just the character sheet and the scene's core action. A prompt the reviewer
    edited (``edited``) is sent exactly as they wrote it, at every level: what they see is
    what is sent."""
    if edited:
        return prompt
    if level <= 0:
        return sanitize(prompt)
    if level == 1:
        return sanitize(prompt) + "\nFamily-friendly, gentle, no injuries, storybook mood."
    action = core_action(scene_text or prompt)
    return f"{sanitize(sheet)}\nSCENE: {action}\nFamily-friendly storybook illustration."


POLICY_LEVELS = 3

REJECT_REASONS: dict[str, str] = {
    "Hero looks different": "Match the character sheet exactly: same species, colours, markings and proportions.",
    "Wrong action": "Show exactly the action described in the scene, clearly, in the foreground.",
    "Wrong setting": "Place the scene clearly in the setting from the character sheet.",
    "Style is off": "Follow the art style from the character sheet exactly.",
    "Anatomy problems": "Correct animal anatomy: four legs, one tail, natural proportions, no extra limbs.",
    "Too dark or violent": "Brighter lighting, gentle mood, nothing frightening.",
}


def feedback_text(reasons: list[str], note: str = "") -> str:
    parts = [REJECT_REASONS[r] for r in reasons if r in REJECT_REASONS]
    note = quiz.clean_text(note)[:200]
    if note:
        parts.append(f"Creator's note: {note}")
    return " ".join(parts)


def with_feedback(prompt: str, feedback: str) -> str:
    """The prompt with the review's fix added: also what the reviewer sees (and may change or
    remove) under "Edit prompt and retry"."""
    return f"{prompt}\nFIX FROM REVIEW: {feedback}" if feedback else prompt
