import streamlit as st

from foxpipe import app as workflow
from foxpipe import ui
from foxpipe.domain import continuity, quiz
from foxpipe.domain.models import Scene, Story
from foxpipe.domain.story import SCENE_MAX_CHARS, placeholder_text

ui.page_start()
settings = ui.settings()


# ---------------------------------------------------------------- the story being written
# The quiz's "Write my story" opens this page at once; the story is written in the background
# (its id in the address, ``?writing=``, so a reload finds it) and taken here when it ends.
writing_id = st.query_params.get("writing")
if writing_id and ui.taken(writing_id):  # Back to an address of a story already taken
    st.query_params.pop("writing", None)
    writing_id = None
writing_id = writing_id or st.session_state.get("story_task")
if writing_id:
    written = workflow.task(writing_id)
    if written is None or not written.running:
        ui.take(writing_id)
        st.session_state.pop("story_task", None)
        st.query_params.pop("writing", None)
    if written is None and st.session_state.story is None:  # the app restarted meanwhile
        st.warning(
            "The story being written was interrupted (the app restarted); write it again.",
            icon=":material/warning:",
        )
        st.page_link(ui.QUIZ_PAGE, label="Back to the quiz", icon=":material/arrow_back:")
        st.stop()
    if written is not None and written.status == "done":
        st.session_state.story = written.result
        st.session_state.job_id = None
        st.session_state.pop("story_retry", None)  # a retry of the last story no longer applies
        st.session_state.pop("approve_task", None)  # nor the last story's approval (in History)
    elif written is not None and written.status == "failed":
        st.title("The story could not be written")
        st.error(ui.plain(written.error), icon=":material/error:")
        st.caption("Your answers are kept.")
        st.page_link(ui.QUIZ_PAGE, label="Back to the quiz", icon=":material/arrow_back:")
        st.stop()
    elif written is not None:
        st.session_state.story_task = writing_id
        if st.query_params.get("writing") != writing_id:
            st.query_params["writing"] = writing_id
        ui.wait_for(writing_id, "Writing your story")
# ---------------------------------------------------------------- end of the story being written

# ---------------------------------------------------------------- writing the missing scenes again
# In the background, like the quiz's story: its id is in the URL (``?retrying=``), so a reload
# finds it still going; what the user wrote is kept (only placeholders are replaced).
retry_id = st.session_state.get("story_retry") or st.query_params.get("retrying")
if retry_id and workflow.task(retry_id) is None:  # unknown here (the app restarted): forget it
    st.session_state.pop("story_retry", None)
    st.query_params.pop("retrying", None)
    retry_id = None
if retry_id:
    st.session_state.story_retry = retry_id
    if st.query_params.get("retrying") != retry_id:
        st.query_params["retrying"] = retry_id


def retry_story() -> None:
    """In a callback: a double click cannot start two."""
    story = st.session_state.story
    st.session_state.story_retry_for = story.id  # applied to this story only
    st.session_state.story_retry = workflow.start_story(settings, story.answers)


def apply_retry(new: Story) -> None:
    """The story written again, applied before the text areas are drawn."""
    story = st.session_state.story
    if story is None:  # a reload lost this session's story: the one just written is it
        st.session_state.story = new
        return
    if story.id != st.session_state.pop("story_retry_for", story.id):
        return  # written for a story this session has since replaced (a new quiz): dropped
    # Keep what the user wrote: only placeholders are replaced.
    for old, fresh in zip(story.scenes, new.scenes, strict=True):
        if old.placeholder and not fresh.placeholder:
            old.text, old.placeholder = fresh.text, False
            st.session_state[f"scene_{story.id}_{old.number}"] = fresh.text
    if story.title.endswith("'s story") and new.source != "placeholder":
        story.title = new.title
    story.problem = new.problem


@st.fragment(run_every=0.5 if retry_id else None)
def story_retry() -> None:
    """Polls the story being written again; when it ends, one full rerun applies it."""
    t = ui.ended_task("story_retry", "retrying")
    if t is None:
        return
    if t.status == "done":
        st.session_state.story_retry_done = t.result
    else:
        st.session_state.scene_notice = f"The story could not be written: {t.error}"
    st.rerun()


if (written := st.session_state.pop("story_retry_done", None)) is not None:
    apply_retry(written)
if st.session_state.story is None and retry_id:  # a reload while it is being written
    st.title("Writing the missing scenes again")
    story_retry()
    st.stop()
# ---------------------------------------------------------------- end of writing again

ui.need(
    st.session_state.story is not None,
    "Answer the quiz first: the scenes are written from it.",
    ui.QUIZ_PAGE,
    "Go to the quiz",
)
story: Story = st.session_state.story

# Approving in a callback: a double click cannot make two jobs. The page then switches at once,
# in the run the click started (nothing polls on this page then), to the page that shows the
# approval's progress: the gallery, or the Hero page when the hero's reference sheet comes
# first (see ui.approval).
if go := st.session_state.pop("go_approving", None):
    page, params = go
    st.switch_page(page, query_params=params)


def scene_key(n: int) -> str:
    return f"scene_{story.id}_{n}"


def rewrite(n: int) -> None:
    note = st.session_state.get(f"note_{story.id}_{n}", "")
    st.session_state.rewrite_task = (n, workflow.start_rewrite(settings, story, n, note))


# A rewrite that finished in the background is applied before the text areas are drawn.
if done := st.session_state.pop("rewrite_done", None):
    n_done, text_done = done
    story.scenes[n_done - 1].text = text_done
    story.scenes[n_done - 1].placeholder = False
    st.session_state[scene_key(n_done)] = text_done


def apply_edit(scene: Scene, text: str) -> None:
    """What the scene's box holds, as the story keeps it."""
    cleaned = quiz.clean_text(text)[:SCENE_MAX_CHARS]
    if cleaned != scene.text:
        scene.text = cleaned
        scene.placeholder = cleaned == placeholder_text(scene.number)


def approval_key(story: Story) -> str:
    """What an approval is made from: this story's scenes as they are now, the saved hero and
    the continuity choice. Approving the same again opens that approval (or its gallery)."""
    hero_id = st.session_state.get("hero_id") or ""
    return workflow.approval_once(ui.me(), story, hero_id, continuity_choice())


def open_approval(page: str, tid: str) -> bool:
    """Open an approval already made: its progress while it runs, its gallery once made.
    False when it is neither (failed, or forgotten by the engine)."""
    t = workflow.task(tid)
    if t is not None and t.running:
        st.session_state.go_approving = (page, {"approving": tid})
        return True
    if t is not None and t.status == "done":
        st.session_state.go_approving = (page, {"job": t.result.job_id})
        return True
    return False


def open_last_approval(key: str) -> bool:
    """Open this session's last approval when it was made from the same scenes (a second click
    of a double click, however late the browser delivers it, or Approve pressed again)."""
    last = st.session_state.get("last_approval")
    return bool(last and last[0] == key and open_approval(*last[1]))


def approve(new_gallery: bool = False) -> None:
    if st.session_state.get("rewrite_task") or st.session_state.get("story_retry"):
        st.session_state.scene_notice = (
            "Wait for the scene being rewritten (or the missing scenes being written again), "
            "then approve."
        )
        return
    # A second click made on the same render of this page as the first (the browser had not yet
    # seen the first one's switch): the same approval opens again, no second job.
    if (again := ui.same_click("scenes")) and open_approval(*again):
        return
    # An edit whose own run was cut short by this click is in the box, not yet in the story.
    for s in story.scenes:
        if isinstance(text := st.session_state.get(scene_key(s.number)), str):
            apply_edit(s, text)
    empty = [s.number for s in story.scenes if not s.text.strip()]
    missing = [s.number for s in story.scenes if s.placeholder]
    if empty or missing:
        names = ", ".join(f"scene {n}" for n in sorted(set(empty + missing)))
        st.session_state.scene_notice = f"Write or rewrite {names} before approving."
        return
    key = approval_key(story)
    if not new_gallery and open_last_approval(key):
        return
    # The prompts are written and the job made in the background (with OpenAI, up to a minute).
    hero_id = st.session_state.get("hero_id")  # a saved hero: its sheet and references are reused
    studio = ui.studio()
    hero_first = studio.approval_opens_hero_page(story, hero_id or "")
    if hero_id:
        tid = studio.start_approval_with_hero(story, ui.me(), hero_id, again=new_gallery)
    else:
        tid = workflow.start_approval(
            settings, story, ui.me(), again=new_gallery, **continuity_choice()
        )
    st.session_state.approve_task = tid
    st.session_state.approve_page = (ui.HERO_PAGE if hero_first else ui.GALLERY_PAGE, tid)
    ui.clicked("scenes", st.session_state.approve_page)
    st.session_state.last_approval = (key, st.session_state.approve_page)
    st.session_state.go_approving = (st.session_state.approve_page[0], {"approving": tid})


@st.fragment(run_every=0.5 if st.session_state.get("rewrite_task") else None)
def background() -> None:
    """Polls the scene being rewritten in the background; when it ends, one full rerun shows it."""
    if pending := st.session_state.get("rewrite_task"):
        n, tid = pending
        t = workflow.task(tid)
        if t is not None and t.running:
            st.info(t.stage, icon=":material/hourglass_top:")
            return
        st.session_state.pop("rewrite_task")
        if t is None or t.status == "failed":
            st.session_state.scene_notice = (
                f"Scene {n} could not be rewritten: {t.error if t else 'interrupted'}"
            )
        else:
            st.session_state.rewrite_done = (
                n,
                t.result[:SCENE_MAX_CHARS],
            )  # applied before the widgets
        st.rerun()


st.title(ui.plain(story.title))
st.caption(
    "Edit any scene; your changes are kept when you switch pages. Approve to make the images."
)
if story.problem:
    st.warning(ui.plain(story.problem), icon=":material/warning:")
    st.button(
        "Try writing the missing scenes again",
        on_click=retry_story,
        icon=":material/refresh:",
        key="retry_story",
        disabled=bool(retry_id),
    )
if retry_id:
    story_retry()
if notice := st.session_state.pop("scene_notice", ""):
    st.error(ui.plain(notice), icon=":material/error:")

for scene in story.scenes:
    n = scene.number
    with st.container(border=True):
        head, tools = st.columns([4, 1], vertical_alignment="center")
        label = f"Scene {n} · {scene.beat}"
        head.markdown(f"**{label}**" + ("  :orange-badge[missing]" if scene.placeholder else ""))
        with tools.popover("Rewrite", icon=":material/edit:", width="stretch"):
            st.text_input("What should change? (optional)", key=f"note_{story.id}_{n}")
            st.button(
                "Rewrite this scene",
                key=f"rewrite_{story.id}_{n}",
                on_click=rewrite,
                args=(n,),
                disabled=bool(st.session_state.get("rewrite_task")),
            )
        # max_chars: the box itself stops at the limit (with a counter), so what is shown is
        # exactly what is kept.
        text = st.text_area(
            label,
            value=scene.text[:SCENE_MAX_CHARS],
            key=scene_key(n),
            height=90,
            label_visibility="collapsed",
            max_chars=SCENE_MAX_CHARS,
        )
        if len(text) >= SCENE_MAX_CHARS:
            limit = f"{SCENE_MAX_CHARS:,}".replace(",", " ")
            st.caption(
                f":orange[:material/warning: Scene {n} is at the {limit}-character limit; "
                "nothing beyond it is kept.]"
            )
        apply_edit(scene, text)


# ---------------------------------------------------------------- continuity (before approval)
# How each image is checked against the hero: stored on the job when the scenes are approved.
def continuity_choice() -> dict[str, object]:
    mode = st.session_state.get("continuity_mode", settings.continuity)
    return {
        "continuity": continuity.parse_mode(mode),
        "continuity_threshold": int(
            st.session_state.get("continuity_threshold", settings.continuity_threshold)
        ),
    }


with st.expander("Continuity check: every image against the hero", icon=":material/policy:"):
    st.radio(
        "When an image does not look like the hero",
        list(continuity.MODES),
        key="continuity_mode",
        index=list(continuity.MODES).index(continuity.parse_mode(settings.continuity)),
        horizontal=True,
        format_func=lambda m: {
            "off": "Don't check",
            "flag": "Flag it for me",
            "fix": "Fix it once by itself, then flag",
        }[m],
    )
    st.slider(
        "Off model below this score",
        0,
        100,
        max(0, min(100, settings.continuity_threshold)),
        key="continuity_threshold",
        help="Each check gives a score 0-100 against the hero's reference.",
    )
    per_story = workflow.story_check_cost(settings, len(story.scenes), fix_rate=0.1)
    st.caption(
        f"With {'OpenAI' if settings.openai_live else 'the built-in check'}: about "
        f"${per_story:.3f} per story for the checks"
        + (f" ({settings.openai_vision_model})." if settings.openai_live else " (free).")
    )
# ---------------------------------------------------------------- end of continuity

# Not while a scene is rewritten or the story written again (wait for them: the page switches at
# the click, and nothing may be polling then), nor while these scenes are being approved.
approving = workflow.task(st.session_state.get("approve_task"))
if approving is not None and approving.running:
    st.info(
        "These scenes are being turned into the image prompts.", icon=":material/hourglass_top:"
    )
    page, task_id = st.session_state.get("approve_page") or (ui.GALLERY_PAGE, approving.id)
    st.page_link(
        page,
        label="See its progress",
        icon=":material/arrow_forward:",
        query_params={"approving": task_id},
    )
busy = bool(
    st.session_state.get("rewrite_task")
    or retry_id
    or (approving is not None and approving.running)
)
st.button(
    "Approve scenes",
    type="primary",
    icon=":material/check:",
    on_click=approve,
    key="approve_scenes",
    disabled=busy,
    help="Wait for the scene being rewritten first."
    if st.session_state.get("rewrite_task")
    else None,
)
last = st.session_state.get("last_approval")
if not busy and last and last[0] == approval_key(story):
    st.caption(
        "These scenes are approved as they are: Approve opens their gallery. A new gallery of "
        "the same scenes makes every image again (and is paid again with OpenAI)."
    )
    st.button(
        "Make a new gallery of these scenes",
        icon=":material/add_photo_alternate:",
        on_click=approve,
        kwargs={"new_gallery": True},
        key="approve_again",
    )
ui.rendered("scenes")
background()
