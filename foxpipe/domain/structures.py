"""Story structures as data: each is 20 scenes of named beats grouped in acts, with its own
guidance for the writer, its own visual notes, and (for some) a second form of the hero.

The quiz asks for the structure first (``answers["structure"]`` holds its label); answers saved
before structures existed have no such key and mean the power fantasy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from foxpipe.domain.models import SCENE_COUNT

Form = Literal["base", "powered"]
ANSWER_KEY = "structure"


@dataclass(frozen=True)
class Beat:
    name: str
    goal: str


@dataclass(frozen=True)
class Span:
    """One named beat lasting ``scenes`` consecutive scenes."""

    scenes: int
    name: str
    goal: str


@dataclass(frozen=True)
class Act:
    name: str
    spans: tuple[Span, ...]

    @property
    def scene_count(self) -> int:
        return sum(s.scenes for s in self.spans)


@dataclass(frozen=True)
class Structure:
    key: str  # stable id, e.g. "rescue"
    label: str  # what the quiz shows and the answers store
    summary: str  # one line for the quiz
    acts: tuple[Act, ...]
    guidance: str  # what the writer must get right for this structure
    visual_notes: str  # mood and look the images share
    second_form_from: int | None = None  # first scene of the hero's powered-up form, if it has one
    second_form: str = ""  # how that form is named

    @property
    def beats(self) -> tuple[Beat, ...]:
        return tuple(
            Beat(s.name, s.goal) for act in self.acts for s in act.spans for _ in range(s.scenes)
        )

    def beat(self, number: int) -> Beat:
        """The beat of scene ``number`` (1-based); out of range numbers clamp to the ends."""
        beats = self.beats
        return beats[min(max(number, 1), len(beats)) - 1]

    def act_of(self, number: int) -> Act:
        n = 0
        for act in self.acts:
            n += act.scene_count
            if number <= n:
                return act
        return self.acts[-1]

    @property
    def has_second_form(self) -> bool:
        return self.second_form_from is not None

    def forms(self) -> tuple[Form, ...]:
        return ("base", "powered") if self.has_second_form else ("base",)

    def beat_sheet(self) -> str:
        """Numbered scenes grouped by act, as a writer reads them."""
        lines: list[str] = []
        n = 0
        for act in self.acts:
            lines.append(f"{act.name}:")
            for span in act.spans:
                for _ in range(span.scenes):
                    n += 1
                    lines.append(f"{n}. {span.name}: {span.goal}")
        return "\n".join(lines)


def _act(name: str, *spans: tuple[int, str, str]) -> Act:
    return Act(name, tuple(Span(*s) for s in spans))


POWER_FANTASY = Structure(
    key="power_fantasy",
    label="Power fantasy",
    summary="An underdog finds a power, trains, transforms and wins with fairness.",
    acts=(
        _act(
            "Act I: The underdog",
            (4, "Underdog setup", "show the hero's ordinary, hard life and the setback"),
            (2, "Discovery", "the hero finds the thing that will change everything"),
        ),
        _act(
            "Act II: Becoming",
            (2, "First failure", "the hero tries the new power too soon and fails in public"),
            (2, "Training montage", "practice, falls, small wins, growing skill"),
            (2, "Transformation", "the power awakens fully; the hero's look changes"),
            (2, "Power display", "the hero shows what it can do; others are amazed"),
        ),
        _act(
            "Act III: The showdown",
            (
                5,
                "Challenge, justice and redemption",
                "the rival's challenge, the showdown without cruelty, fairness restored, the rival redeemed",
            ),
            (1, "Triumph", "the hero celebrated; the final image of victory"),
        ),
    ),
    guidance=(
        "A 'power fantasy': the smallest, most doubted animal gains a power, fails, trains and "
        "transforms; from the transformation on the hero is shown in its powered-up form. The "
        "showdown is won with courage and cleverness, never cruelty, and the rival is redeemed."
    ),
    visual_notes="Muted, cool light in the early scenes; warm, glowing light once the power awakens.",
    second_form_from=11,
    second_form="powered-up form",
)

RESCUE = Structure(
    key="rescue",
    label="Rescue mission",
    summary="Someone the hero loves is taken or trapped; the hero brings them home.",
    acts=(
        _act(
            "Act I: The loss",
            (2, "Ordinary day", "the hero with the one who will need rescuing; show their bond"),
            (2, "Taken", "the one to rescue is caught by the danger while the hero watches"),
            (1, "The vow", "everyone says it is impossible; the hero promises to go anyway"),
        ),
        _act(
            "Act II: The journey",
            (2, "Setting out", "the hero leaves home and follows the trail"),
            (
                3,
                "Obstacles",
                "three different obstacles on the way, each passed with a different skill",
            ),
            (
                2,
                "Lowest point",
                "the trail is lost and the hero almost gives up, then finds a sign",
            ),
        ),
        _act(
            "Act III: The rescue",
            (2, "Found", "the hero finds the one to rescue and sees how they are held"),
            (2, "The daring plan", "a clever plan, carried out quietly and bravely"),
            (2, "Escape", "the breakout and the chase, with the danger close behind"),
            (2, "Homecoming", "safe at home; the reunion and the hero honoured"),
        ),
    ),
    guidance=(
        "A rescue mission: make the bond between the hero and the one to rescue warm and clear "
        "in the first scenes, so the loss matters. The journey has distinct obstacles; the rescue "
        "succeeds through planning and bravery, never violence; the one rescued is safe and unhurt."
    ),
    visual_notes="A clear trail across changing landscapes; tense blue light in the middle, warm home light at the end.",
)

FRIENDSHIP = Structure(
    key="friendship",
    label="Friendship against the odds",
    summary="Two animals who should never be friends become inseparable.",
    acts=(
        _act(
            "Act I: Strangers",
            (2, "Lonely start", "the hero is lonely or set apart from the others"),
            (2, "Unlikely meeting", "the hero meets the unlikely friend by chance"),
            (2, "Mistrust", "they are wary of each other; the others warn the hero away"),
        ),
        _act(
            "Act II: Friends in secret",
            (2, "Small kindness", "one helps the other with something small"),
            (3, "Growing bond", "games, shared secrets and laughter; they learn each other's ways"),
            (2, "The odds strike", "what stands between them drives them apart"),
            (2, "Falling out", "hurt words, and each is alone again"),
        ),
        _act(
            "Act III: Together",
            (2, "Choosing each other", "one of them is in trouble and the other comes to help"),
            (2, "Standing together", "together they face the others and change their minds"),
            (1, "Friends for good", "the two friends side by side, accepted by everyone"),
        ),
    ),
    guidance=(
        "Friendship against the odds: the two friends must feel truly different (size, kind, "
        "family or habits), and the thing that keeps them apart must be concrete. Let the bond grow "
        "through small, specific moments; the ending shows the others accepting the friendship."
    ),
    visual_notes="The two friends framed side by side in every shared scene; the distance between them shows the mood.",
)

SURVIVAL = Structure(
    key="survival",
    label="Survival journey",
    summary="A danger drives the hero from home; it must reach safety.",
    acts=(
        _act(
            "Act I: The danger",
            (2, "Safe home", "the hero's peaceful home and the small ones it cares about"),
            (2, "The danger arrives", "the danger appears and grows; home is no longer safe"),
            (2, "Setting off", "the hero leads the way out towards safety"),
        ),
        _act(
            "Act II: The long road",
            (2, "First trial", "the first hard stretch of the road"),
            (2, "Finding supplies", "food, water or shelter found by wit"),
            (2, "The danger returns", "the danger catches up and the road gets harder"),
            (2, "Courage runs low", "tired and afraid, the hero almost stops"),
            (2, "A spark of hope", "a sign that safety is near gives new strength"),
        ),
        _act(
            "Act III: Safety",
            (2, "The final crossing", "the hardest and last obstacle, crossed together"),
            (2, "Safe at last", "they reach safety; a new home and a calm sky"),
        ),
    ),
    guidance=(
        "A survival journey: the danger is a force of nature or circumstance, not a villain; show "
        "its scale without harm to anyone. Each stage of the road is a different place and a "
        "different test; the hero survives by endurance, wit and caring for others."
    ),
    visual_notes="Wide landscapes that show the scale of the danger; the group small in the frame, light growing as safety nears.",
)

TRICKSTER = Structure(
    key="trickster",
    label="The trickster outwits the bully",
    summary="A small, clever hero tricks a big bully into leaving everyone alone.",
    acts=(
        _act(
            "Act I: The bully",
            (3, "The bully's reign", "the bully takes and frightens; the small animals suffer"),
            (1, "Enough is enough", "the bully goes too far and the hero decides to act"),
            (2, "The clever plan", "the hero thinks up the trick and gathers what it needs"),
        ),
        _act(
            "Act II: The trick",
            (3, "Setting the trap", "the trick is set up step by step, with friends helping"),
            (2, "Close calls", "the plan nearly fails; quick thinking saves it"),
            (
                2,
                "The bully suspects",
                "the bully grows suspicious and the hero keeps a straight face",
            ),
        ),
        _act(
            "Act III: Outwitted",
            (3, "The trick springs", "the trick works exactly as planned"),
            (
                2,
                "The bully outwitted",
                "the bully is fooled, embarrassed, and gives back what it took",
            ),
            (1, "Lesson learned", "the bully learns to share and stops bullying"),
            (1, "Peace returns", "the small animals celebrate the clever hero"),
        ),
    ),
    guidance=(
        "The trickster outwits the bully: the hero is smaller and weaker but cleverer; the trick "
        "must be set up early and pay off clearly. Nobody is hurt: the bully is embarrassed, not "
        "harmed, and ends up better behaved. Humour is welcome."
    ),
    visual_notes="Playful, bright, slightly comic framing; the bully large and the hero small, with exaggerated expressions.",
)

REDEMPTION = Structure(
    key="redemption",
    label="Redemption of the rival",
    summary="A rival who did the hero wrong falls low, and the hero helps it change.",
    acts=(
        _act(
            "Act I: The wrong",
            (3, "Old rivals", "the hero and the rival compete; show what each wants"),
            (2, "The wrong done", "the rival does the hero wrong"),
            (1, "The hero's anger", "the hero is hurt and angry"),
        ),
        _act(
            "Act II: The fall",
            (
                2,
                "The rival's downfall",
                "the rival's wrong turns against it; it is alone and in trouble",
            ),
            (2, "The hero's choice", "the hero could walk away but chooses to help"),
            (
                3,
                "Uneasy alliance",
                "they work together, awkwardly, to get the rival out of trouble",
            ),
            (2, "The rival's story", "the rival explains why it did wrong; the hero understands"),
        ),
        _act(
            "Act III: Amends",
            (3, "Making amends", "the rival says sorry and puts right what it did"),
            (2, "A new friendship", "former rivals now friends; others see the change"),
        ),
    ),
    guidance=(
        "Redemption of the rival: the wrong must be specific and the hero's hurt real; the rival "
        "gets a believable reason (not an excuse) and makes amends by its own actions. The hero "
        "wins by mercy, not by defeating the rival."
    ),
    visual_notes="The rival drawn in shadow and cold colours early, then in the same warm light as the hero by the end.",
)

STRUCTURES: tuple[Structure, ...] = (
    POWER_FANTASY,
    RESCUE,
    FRIENDSHIP,
    SURVIVAL,
    TRICKSTER,
    REDEMPTION,
)
BY_KEY: dict[str, Structure] = {s.key: s for s in STRUCTURES}
BY_LABEL: dict[str, Structure] = {s.label: s for s in STRUCTURES}
LABELS: tuple[str, ...] = tuple(s.label for s in STRUCTURES)
DEFAULT = POWER_FANTASY

for _s in STRUCTURES:
    assert len(_s.beats) == SCENE_COUNT, _s.key
    assert _s.second_form_from is None or 1 < _s.second_form_from <= SCENE_COUNT, _s.key


def get(value: Structure | str | Mapping[str, object] | None) -> Structure:
    """The structure of answers (a dict), a label or a key; answers without one (saved before
    structures existed) and unknown values mean the power fantasy."""
    if isinstance(value, Structure):
        return value
    if isinstance(value, Mapping):
        value = str(value.get(ANSWER_KEY) or "")
    if isinstance(value, str):
        return BY_LABEL.get(value) or BY_KEY.get(value) or DEFAULT
    return DEFAULT


def form_for(structure: Structure | str | Mapping[str, object] | None, scene_number: int) -> Form:
    """Which hero reference a scene uses: "powered" from the structure's second form on, else "base"."""
    s = get(structure)
    if s.second_form_from is not None and scene_number >= s.second_form_from:
        return "powered"
    return "base"


def form_label(structure: Structure | str | Mapping[str, object] | None, form: str) -> str:
    s = get(structure)
    if form == "powered" and s.second_form_from is not None:
        return f"{s.second_form[:1].upper()}{s.second_form[1:]} (scenes {s.second_form_from}-{SCENE_COUNT})"
    return "The hero"
