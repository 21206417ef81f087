"""The offline writer's storylines: one deterministic 20-scene story per structure, written
from the quiz answers, one line per beat of the structure (see ``structures``)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from foxpipe.domain import quiz
from foxpipe.domain import structures as st
from foxpipe.domain.models import SCENE_COUNT


def pick(options: list[str], seed: str) -> str:
    h = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    return options[h % len(options)]


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def definite(text: str) -> str:
    """The second mention of someone: "a shy young wolf" becomes "the shy young wolf"."""
    for article in ("a ", "an ", "the hero's "):
        if text.lower().startswith(article):
            return "the " + text[len(article) :]
    return text


def own(text: str, name: str) -> str:
    """Answers say "the hero's"; the story says the hero's name."""
    return re.sub(r"\bthe hero's\b", f"{name}'s", text, flags=re.I)


@dataclass(frozen=True)
class Cast:
    """What every storyline needs from the answers."""

    a: dict[str, str]
    name: str
    species: str
    place: str
    tone: str
    seed: str


def _cast(answers: dict[str, str]) -> Cast:
    a = answers
    return Cast(
        a=a,
        name=a.get("hero_name") or "Rusty",
        species=(quiz.hero_species(a) or "fox").lower(),
        place=a.get("setting", "Enchanted forest").lower(),
        tone=a.get("tone", "Heroic triumph"),
        seed=json.dumps(a, sort_keys=True),
    )


def _power_fantasy(c: Cast) -> tuple[str, list[str]]:
    a, name, species, place, tone, seed = c.a, c.name, c.species, c.place, c.tone, c.seed
    setback = quiz.setback_text(a).rstrip(".") or "overlooked by everyone"
    setback = setback[:1].lower() + setback[1:]
    found = quiz.discovery_text(a)
    power = quiz.power_text(a)
    rival = quiz.rival_text(a)
    weather = pick(
        ["a misty dawn", "a golden afternoon", "a cold blue evening", "a windy morning"], seed
    )
    lines = [
        f"In the {place}, {name} the little {species} wakes on {weather}, already dreading the day.",
        f"{name} is {setback}, and the others laugh as {name} walks past with lowered ears.",
        f"Alone by the water, {name} stares at a tired reflection and wonders if things will ever change.",
        f"{cap(rival)} struts by and mocks {name}, and the whole {place} seems to agree.",
        f"Chasing a strange light deep in the {place}, {name} discovers {found}.",
        f"A warm glow surrounds {name}: {power} stirs for the first time, faint but real.",
        f"Eager to prove everyone wrong, {name} tries {power} in front of the others, and it fizzles out.",
        f"The crowd laughs even louder; {name} slips away, ashamed but not ready to quit.",
        f"Day after day {name} trains at dawn, falling, getting up, and falling a little less each time.",
        f"Through rain and snow {name} practises until {power} answers every call.",
        f"On a stormy night the power awakens fully, and {name} glows from nose to tail.",
        f"{name} stands transformed: eyes bright, fur shimmering with {power}, taller in every way.",
        f"{name} shows what {power} can do, lighting up the {place} as the others stare in awe.",
        f"Young animals gather around {name}, cheering for the first time.",
        f"{cap(rival)} appears and challenges {name} before the whole {place}.",
        f"The rival pushes hard, but {name} answers with courage and clever use of {power}.",
        f"{name} wins the showdown without cruelty, and the rival is left humbled and speechless.",
        f"{name} makes things fair again, returning what the rival had taken from the smaller animals.",
        f"Instead of gloating, {name} offers a paw to the rival, who finally says sorry.",
        f"Under the {pick(['rising sun', 'full moon', 'northern lights'], seed)}, the {place} celebrates "
        f"{name}: the smallest {species} became its greatest hero. ({tone})",
    ]
    return f"{name} and the {power.title()}", lines


def _rescue(c: Cast) -> tuple[str, list[str]]:
    name, species, place, tone, seed = c.name, c.species, c.place, c.tone, c.seed
    first_who = own(quiz.rescued_text(c.a), name)
    who = definite(quiz.rescued_text(c.a))
    first_trap = quiz.captor_text(c.a)
    trap = definite(first_trap)
    game = pick(
        ["hide-and-seek among the roots", "racing the falling leaves", "counting the first stars"],
        seed,
    )
    lines = [
        f"In the {place}, {name} the {species} spends every morning with {first_who}, {game}.",
        f"{name} shares the best berries with {who} and promises to always keep watch.",
        f"One grey afternoon {name} looks away for a moment, and {who} wanders too far.",
        f"{name} hears a cry and races back, too late: {who} is caught in {first_trap}.",
        f"The elders of the {place} shake their heads, but {name} vows to bring {who} home.",
        f"At first light {name} sets out alone, following small tracks into the unknown.",
        f"{name} leaves the {place} behind for the first time, heart pounding with every step.",
        f"A rushing river blocks the way; {name} crosses it on stepping stones, one careful leap at a time.",
        f"A thorny thicket snags {name}'s fur, so {name} finds a low tunnel and crawls through.",
        f"A steep cliff rises ahead; {name} climbs it by moonlight, paw over paw.",
        f"The tracks vanish in the rain, and {name} sits shivering, wondering if it is hopeless.",
        f"Then {name} spots a tiny familiar feather on the path, and hope comes rushing back.",
        f"Over the last hill {name} finally sees it: {trap}, and {who} inside, frightened but unhurt.",
        f"{name} watches quietly from the shadows, learning how {trap} is guarded and when.",
        f"{name} makes a daring plan: wait for the change of the guard, then move fast and silent.",
        f"In the dark, {name} slips close and whispers to {who}: 'Be ready, I'm here.'",
        f"{name} works the way open and {who} tumbles free, and together they run.",
        f"The alarm rises behind them, but {name} leads {who} along the secret path and they escape.",
        f"At dawn {name} carries {who} home, and the whole {place} rushes out to meet them.",
        f"That night the {place} honours {name}, and {who} never leaves the side of the brave {species}. ({tone})",
    ]
    return f"{name} to the Rescue", lines


def _friendship(c: Cast) -> tuple[str, list[str]]:
    name, species, place, tone, seed = c.name, c.species, c.place, c.tone, c.seed
    first_friend = quiz.friend_text(c.a)
    friend = definite(first_friend)
    odds = quiz.odds_text(c.a)
    shared = pick(["skipping stones", "watching the clouds change shape", "a secret song"], seed)
    lines = [
        f"In the {place}, {name} the {species} always plays alone at the edge of the group.",
        f"The others run off together, and {name} pretends not to mind.",
        f"One foggy morning {name} stumbles upon {first_friend}, stuck in a tangle of vines.",
        f"{name} and {friend} stare at each other, both ready to run.",
        f"{cap(friend)} growls, and {name} backs away; they have heard stories about each other.",
        f"Back home, the others warn {name}: stay away, because {odds}.",
        f"Still, {name} returns and frees {friend} from the vines, and the friend shyly says thank you.",
        f"The next day {friend} leaves a gift at {name}'s door: the shiniest pebble in the {place}.",
        f"Soon {name} and {friend} meet every day in secret for {shared}.",
        f"{name} teaches {friend} a favourite game, and the friend teaches {name} a new one.",
        f"{name} laughs harder than ever before; {friend} has become a real friend.",
        f"But it comes out: {odds}, and everyone is angry with {name}.",
        f"{name} and {friend} are kept apart, each on a different side of the {place}.",
        f"In a hurt moment {name} says something unkind, and {friend} walks away.",
        f"Alone again, {name} misses {friend} more than words can say.",
        f"Then {friend} gets into trouble on the far side of the {place}, and {name} hears the call.",
        f"{name} runs without thinking and helps {friend} out, and they hug, sorry and forgiven.",
        f"Side by side, {name} and {friend} face the others and show them what friendship looks like.",
        f"One by one the others see it: {name} and {friend} are better together.",
        f"Under the {pick(['setting sun', 'first spring blossoms', 'stars'], seed)}, {name} and {friend} sit together, "
        f"friends for good, welcomed by all. ({tone})",
    ]
    return f"{name} and the Unlikely Friend", lines


def _survival(c: Cast) -> tuple[str, list[str]]:
    name, species, place, tone, seed = c.name, c.species, c.place, c.tone, c.seed
    first_danger = quiz.danger_text(c.a)
    danger = definite(first_danger)
    goal = quiz.destination_text(c.a)
    first_little = pick(
        ["three little cousins", "two young siblings", "a small band of kits"], seed
    )
    little = "the " + first_little.removeprefix("a ")
    lines = [
        f"In the {place}, {name} the {species} lives a peaceful life and looks after {first_little}.",
        f"{name} tells {little} stories of {goal}, a place the elders say is always safe.",
        f"One day the air changes, and {name} sees it coming: {first_danger}.",
        f"{cap(danger)} reaches the {place}, and {name} knows home is no longer safe.",
        f"{name} gathers {little} and leads them out, heading for {goal}.",
        f"Looking back once at the {place}, {name} takes the first step of the long road.",
        f"The first stretch is rough and steep, and {name} helps each little one over the rocks.",
        f"By nightfall they are exhausted, and {name} keeps watch while the others sleep.",
        f"Hungry, {name} remembers an old trick and finds hidden roots and berries for everyone.",
        f"{name} finds a dry hollow to shelter in, just as the night turns cold.",
        f"But {danger} is not finished: it catches up, and {name} leads everyone on at a run.",
        f"The path ahead is broken, and {name} must find a new way around.",
        f"Tired and afraid, {name} sits down and wonders if they will ever make it.",
        f"The smallest one curls up beside {name} and whispers: 'You'll get us there.'",
        f"At dawn {name} climbs a rock and sees a faint line of green: {goal} is near.",
        f"With new strength, {name} leads the way, singing to keep everyone's spirits up.",
        f"The last obstacle is the hardest; {name} finds a way and guides every little one across.",
        f"Behind them {danger} fades away; ahead, {name} sees the safe ground at last.",
        f"They arrive at {goal}, and {name} counts them all: every single one is safe.",
        f"Under a calm sky, {name} watches {little} play in their new home, the journey's hero. ({tone})",
    ]
    return f"{name}'s Long Road", lines


def _trickster(c: Cast) -> tuple[str, list[str]]:
    name, species, place, tone, seed = c.name, c.species, c.place, c.tone, c.seed
    first_bully = quiz.bully_text(c.a)
    bully = definite(first_bully)
    trick = quiz.trick_text(c.a)
    loot = pick(["the honey stores", "the best berry bushes", "the only clear pond"], seed)
    lines = [
        f"In the {place}, {first_bully} has taken {loot} for itself, and {name} the {species} watches it happen.",
        f"Every day {bully} pushes the small animals around, and {name} sees them go hungry.",
        f"When {name} asks for a fair share, {bully} only laughs and bellows even louder.",
        f"But when {bully} frightens the smallest ones, {name} decides: enough is enough.",
        f"{name} cannot win by strength, so {name} thinks of a plan: {trick}.",
        f"{name} gathers everything the trick needs, and a few brave friends to help.",
        f"{name} and the friends prepare the trick in secret, step by careful step.",
        f"{name} lets a rumour slip where {bully} will hear it, and waits.",
        f"Everything is in place, and {name} takes a deep breath.",
        f"The plan nearly falls apart when a friend sneezes, but {name} covers it with a quick joke.",
        f"{name} swaps one piece of the trick at the last second, just in time.",
        f"{cap(bully)} squints and sniffs around, growing suspicious of {name}.",
        f"{name} keeps a perfectly straight face while {bully} stares, and the moment passes.",
        f"The trick springs: {trick}, exactly as {name} planned.",
        f"{cap(bully)} falls for it completely, while {name} hides a grin.",
        f"{name}'s friends play their parts perfectly, and the trick grows bigger and bigger.",
        f"{cap(bully)} ends up red-faced and foolish, and {name} calmly asks it to give back {loot}.",
        f"Embarrassed, {bully} hands it all back, and {name} shares it out fairly.",
        f"{name} shows {bully} that sharing is better than taking, and the bully grudgingly agrees.",
        f"The {place} celebrates clever {name}, the smallest {species} who outwitted the biggest bully. ({tone})",
    ]
    return f"{name} Outwits the Bully", lines


def _redemption(c: Cast) -> tuple[str, list[str]]:
    name, species, place, tone, seed = c.name, c.species, c.place, c.tone, c.seed
    first_rival = quiz.rival_text(c.a)
    rival = definite(first_rival)
    wrong = own(quiz.wrong_text(c.a), name)
    contest = pick(["the spring race", "the great tree climb", "the midsummer games"], seed)
    lines = [
        f"In the {place}, {name} the {species} and {first_rival} have always competed in {contest}.",
        f"{name} trains with joy, while {rival} trains with a hard, cold stare.",
        f"This year {name} is sure to win, and {rival} cannot bear it.",
        f"Then, in front of everyone, {rival} {wrong}, and {name} is left stunned.",
        f"Everyone in the {place} sees what happened, and {name}'s chance is gone.",
        f"{name} is hurt and angry, and swears never to speak to {rival} again.",
        f"But the wrong turns against the rival: the others turn their backs, and {rival} wanders off far from {name}.",
        f"Wandering off, {rival} gets trapped on a crumbling ledge, and {name} is the only one nearby.",
        f"{name} could walk away, and for a long moment {name} almost does.",
        f"Instead, {name} steps forward: nobody deserves to be left alone in danger.",
        f"{name} and {rival} must work together to get off the ledge, and neither likes it.",
        f"Step by awkward step, {name} guides {rival} down, each catching the other when they slip.",
        f"At the bottom they sit side by side, and {name} shares the last of the berries.",
        f"{cap(rival)} quietly tells {name} why: it was always afraid of being second best.",
        f"{name} listens, and understands that fear can make anyone do wrong.",
        f"Back in the {place}, {rival} stands before everyone and admits what it did to {name}.",
        f"{cap(rival)} puts right what it did, and {name} sees that the apology is real.",
        f"{name} forgives {rival}, and the {place} sees the rival in a new light.",
        f"Next year {name} and {rival} train together, pushing each other, laughing.",
        f"At {contest}, {name} and {rival} cross the finish line together, rivals no more. ({tone})",
    ]
    return f"{name} and the Rival", lines


WRITERS: dict[str, Callable[[Cast], tuple[str, list[str]]]] = {
    st.POWER_FANTASY.key: _power_fantasy,
    st.RESCUE.key: _rescue,
    st.FRIENDSHIP.key: _friendship,
    st.SURVIVAL.key: _survival,
    st.TRICKSTER.key: _trickster,
    st.REDEMPTION.key: _redemption,
}
assert set(WRITERS) == set(st.BY_KEY)


def write(structure: st.Structure, answers: dict[str, str]) -> tuple[str, list[str]]:
    """The title and the 20 scene texts, one per beat of ``structure``."""
    title, lines = WRITERS[structure.key](_cast(answers))
    assert len(lines) == SCENE_COUNT, structure.key
    return title, lines
