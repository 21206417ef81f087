"""The OpenAI writer per structure, through the real SDK against the loopback fake: the
structure's beats and guidance are in what is sent, and the schema still asks for 20 scenes."""

from __future__ import annotations

import pytest

from foxpipe import app as workflow
from foxpipe.config import load_settings
from foxpipe.domain import quiz, structures
from foxpipe.providers.openai import OpenAIText

ALL = structures.STRUCTURES


@pytest.fixture
def settings(fake_openai):
    return load_settings(
        {},
        {
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": fake_openai.base_url,
            "CHAT_TIMEOUT": "10",
        },
    )


def answers(s: structures.Structure, **over) -> dict[str, str]:
    result = quiz.validate(quiz.defaults() | {"structure": s.label, "hero_name": "Pip"} | over)
    assert result.ok, result.errors
    return result.answers


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.key)
async def test_the_story_request_carries_the_structure_beats_and_guidance(settings, fake_openai, s):
    story = await OpenAIText(settings, retry_pause=0.01).write_story(answers(s))
    (req,) = fake_openai.of("chat")
    system, user = req.messages
    for n, beat in enumerate(s.beats, 1):
        assert f"{n}. {beat.name}: {beat.goal}" in system["content"]
    for act in s.acts:
        assert f"{act.name}:" in system["content"]
    assert s.guidance in system["content"]
    assert not any(o.guidance in system["content"] for o in ALL if o is not s)
    assert f'"structure": "{s.label}"' in user["content"]
    schema = req.fields["response_format"]["json_schema"]["schema"]
    assert (
        schema["properties"]["scenes"]["minItems"]
        == schema["properties"]["scenes"]["maxItems"]
        == 20
    )
    assert [sc.beat for sc in story.scenes] == [b.name for b in s.beats]
    assert story.source == "openai" and not story.missing()


async def test_the_rewrite_request_names_the_structure_beat(settings, fake_openai):
    s = structures.SURVIVAL
    model = OpenAIText(settings, retry_pause=0.01)
    story = await model.write_story(answers(s))
    await model.rewrite_scene(story, 13)
    req = fake_openai.of("chat")[-1]
    assert f"beat: {s.beat(13).name}: {s.beat(13).goal}" in req.prompt
    assert s.guidance in req.messages[0]["content"]


@pytest.mark.parametrize(
    "s", [structures.POWER_FANTASY, structures.RESCUE, structures.TRICKSTER], ids=lambda s: s.key
)
def test_the_character_sheet_asks_for_a_second_form_only_when_the_structure_has_one(
    settings, fake_openai, s
):
    a = answers(s)
    story = workflow.write_story(settings, a)
    fake_openai.reset()
    prepared = workflow.prepare_prompts(settings, story)
    assert not prepared.problem
    sheet_req = fake_openai.of("chat")[0]
    props = set(sheet_req.fields["response_format"]["json_schema"]["schema"]["properties"])
    assert s.visual_notes in sheet_req.messages[0]["content"]
    if s.has_second_form:
        assert "powered_form" in props and "POWERED-UP FORM (scenes 11-20)" in prepared.sheet
        assert "SHOW THE HERO IN ITS POWERED-UP FORM." in prepared.prompts[10]
        assert "SHOW THE HERO IN ITS POWERED-UP FORM." not in prepared.prompts[9]
    else:
        assert "powered_form" not in props and "cast" in props
        assert "POWERED-UP" not in prepared.sheet and "CAST: " in prepared.sheet
        assert not any("POWERED-UP" in p for p in prepared.prompts)
    assert prepared.sheet.startswith("HERO: ") and len(prepared.prompts) == 20
