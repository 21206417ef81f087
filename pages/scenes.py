import streamlit as st

from foxpipe import app as workflow
from foxpipe import ui
from foxpipe.domain import quiz
from foxpipe.domain.models import Story
from foxpipe.domain.story import placeholder_text
from foxpipe.engine import hero

ui.page_start()
settings = ui.settings()
ui.need(st.session_state.story is not None, "Answer the quiz first: the scenes are written from it.",
        ui.QUIZ_PAGE, "Go to the quiz")
story: Story = st.session_state.story

# Approving in a callback: a double click cannot make two jobs, and the page switch
# happens on the next run.
if st.session_state.get("go_gallery"):
    job_id = st.session_state.pop("go_gallery")
    st.switch_page(ui.GALLERY_PAGE, query_params={"job": job_id})
if st.session_state.get("go_hero"):
    job_id = st.session_state.pop("go_hero")
    st.switch_page(ui.HERO_PAGE, query_params={"job": job_id})


def scene_key(n: int) -> str:
    return f"scene_{story.id}_{n}"


def rewrite(n: int) -> None:
    try:
        text = workflow.rewrite_scene(settings, story, n, st.session_state.get(f"note_{story.id}_{n}", ""))
    except Exception as e:
        st.session_state.scene_notice = f"Scene {n} could not be rewritten: {settings.redact(str(e))[:200]}"
        return
    story.scenes[n - 1].text = text
    story.scenes[n - 1].placeholder = False
    st.session_state[scene_key(n)] = text


def retry_story() -> None:
    new = workflow.write_story(settings, story.answers)
    # Keep what the user wrote: only placeholders are replaced.
    for old, fresh in zip(story.scenes, new.scenes, strict=True):
        if old.placeholder and not fresh.placeholder:
            old.text, old.placeholder = fresh.text, False
            st.session_state[scene_key(old.number)] = fresh.text
    if story.title.endswith("'s story") and new.source != "placeholder":
        story.title = new.title
    story.problem = new.problem


def approve() -> None:
    empty = [s.number for s in story.scenes if not s.text.strip()]
    missing = [s.number for s in story.scenes if s.placeholder]
    if empty or missing:
        names = ", ".join(f"scene {n}" for n in sorted(set(empty + missing)))
        st.session_state.scene_notice = f"Write or rewrite {names} before approving."
        return
    reg = ui.registry()
    with st.spinner("Preparing the image prompts…"):
        prepared = workflow.prepare_prompts(settings, story)
    # With OpenAI and references on, the hero sheet is approved first; the images wait for it.
    sheet_first = hero.wanted(settings, reg)
    try:
        job_id = reg.create_job(
            story, prepared.prompts, st.session_state.owner,
            character_sheet=prepared.sheet, size=workflow.image_size(story.answers, settings), start=not sheet_first,
        )
    except Exception as e:
        st.session_state.scene_notice = settings.redact(str(e))
        return
    job = reg.get(job_id)
    if job is not None:
        workflow.log_story(settings, job)
    st.session_state.job_id = job_id
    if prepared.problem:
        st.session_state.prompt_notice = prepared.problem
    st.session_state["go_hero" if sheet_first else "go_gallery"] = job_id


st.title(story.title)
st.caption("Edit any scene; your changes are kept when you switch pages. Approve to make the images.")
if story.problem:
    st.warning(story.problem, icon=":material/warning:")
    st.button("Try writing the missing scenes again", on_click=retry_story, icon=":material/refresh:",
              key="retry_story")
if notice := st.session_state.pop("scene_notice", ""):
    st.error(notice, icon=":material/error:")

for scene in story.scenes:
    n = scene.number
    with st.container(border=True):
        head, tools = st.columns([4, 1], vertical_alignment="center")
        label = f"Scene {n} · {scene.beat}"
        head.markdown(f"**{label}**" + ("  :orange-badge[missing]" if scene.placeholder else ""))
        with tools.popover("Rewrite", icon=":material/edit:", width="stretch"):
            st.text_input("What should change? (optional)", key=f"note_{story.id}_{n}")
            st.button("Rewrite this scene", key=f"rewrite_{story.id}_{n}", on_click=rewrite, args=(n,))
        text = st.text_area(label, value=scene.text, key=scene_key(n), height=90, label_visibility="collapsed")
        cleaned = quiz.clean_text(text)[:1200]
        if cleaned != scene.text:
            scene.text = cleaned
            scene.placeholder = cleaned == placeholder_text(n)

st.button("Approve scenes", type="primary", icon=":material/check:", on_click=approve, key="approve_scenes",
          disabled=bool(st.session_state.get("go_gallery") or st.session_state.get("go_hero")))
