import streamlit as st

from foxpipe import app as workflow
from foxpipe import ui
from foxpipe.domain import quiz, structures

ui.page_start()
settings = ui.settings()
answers: dict[str, str] = st.session_state.answers
errors: dict[str, str] = st.session_state.quiz_errors


def write() -> None:
    """In a callback. A second click made on the same render of this page as the first (the
    browser had not yet seen the first one's switch) opens that story instead of writing
    another."""
    if (again := ui.same_click("quiz")) and workflow.task(again) is not None:
        st.session_state.go_writing = again
        return
    result = quiz.validate(answers)
    st.session_state.quiz_errors = result.errors
    if not result.ok:
        return
    tid = workflow.start_story(settings, result.answers, ui.me())
    st.session_state.story_task = tid
    ui.clicked("quiz", tid)
    st.session_state.go_writing = tid


# The story is written in the background; the Scenes page opens at once, in the run the click
# started, and shows its progress (a switch later, from a polling fragment, races the browser:
# see ui.approval). Its id is in the Scenes page's address, so a reload finds it.
if go := st.session_state.pop("go_writing", None):
    st.switch_page(ui.SCENES_PAGE, query_params={"writing": go})
being_written = workflow.task(st.session_state.get("story_task"))
task_id = being_written.id if being_written is not None and being_written.running else None


# ---------------------------------------------------------------- a saved hero (the library)
saved_hero = ui.studio().hero(st.session_state.get("hero_id"))
if st.session_state.get("hero_id") and saved_hero is None:
    st.session_state.hero_id = None
    st.warning(
        "The saved hero is no longer in the library; answer the questions about your hero.",
        icon=":material/warning:",
    )
if saved_hero is not None:
    answers.update(saved_hero.answers)  # what the hero fixes is not asked


def forget_hero() -> None:
    st.session_state.hero_id = None


def enqueue() -> None:
    """Add these answers to the queue of stories (the quiz's messages when they are not valid)."""
    try:
        item = ui.studio().enqueue(
            st.session_state.owner,
            dict(answers),
            hero_id=st.session_state.get("hero_id") or "",
        )
    except workflow.QueueError as e:
        st.session_state.quiz_notice = f"Not queued: {e}"
        return
    st.session_state.quiz_queued = f"Queued: {item.label} (about {item.images} images)."


st.title("Who is your hero?")
if saved_hero is not None:
    c1, c2 = st.columns([4, 1])
    c1.info(
        f"Saved hero: **{ui.plain(saved_hero.label())}**. Its name, species, look and style are reused, and "
        "its reference sheet too: no new reference image is paid for.",
        icon=":material/bookmark:",
    )
    c2.button("Use another hero", key="forget_hero", on_click=forget_hero, icon=":material/close:")
st.caption(
    "Choose the kind of story first: its 20 scenes follow that structure, and the questions "
    "after it change with it and with your earlier answers."
)

for q in quiz.QUESTIONS:
    if not quiz.is_visible(q, answers):  # answers above may have changed the branch
        continue
    if q.key in workflow.hero_skipped_questions(saved_hero):  # the saved hero fixes it
        continue
    key = f"q_{q.key}"
    if q.options:
        current = answers.get(q.key, q.default)
        index = q.options.index(current) if current in q.options else 0
        value = st.selectbox(q.label, q.options, index=index, key=key, help=q.help or None)
    else:
        value = st.text_input(
            q.label,
            value=answers.get(q.key, q.default),
            key=key,
            placeholder=q.placeholder,
            help=f"Up to {q.max_len} characters.",
        )
    answers[q.key] = value
    if q.key == structures.ANSWER_KEY:
        chosen = structures.get(value)
        with st.expander(f"{chosen.label}: the 20 scenes", icon=":material/view_timeline:"):
            st.caption(chosen.summary)
            for act in chosen.acts:
                st.markdown(
                    f"**{act.name}** · "
                    + " → ".join(f"{span.name} ({span.scenes})" for span in act.spans)
                )
    if q.key in errors:
        st.error(ui.plain(errors[q.key]), icon=":material/error:")

st.button(
    "Write my story",
    type="primary",
    icon=":material/auto_stories:",
    key="write_story",
    on_click=write,
    disabled=bool(task_id),
)
ui.rendered("quiz")
st.button(
    "Add to the queue",
    icon=":material/playlist_add:",
    key="enqueue_story",
    on_click=enqueue,
    help="Make this story later, one after another with others, up to the review (see Queue).",
)
if queued := st.session_state.pop("quiz_queued", ""):
    st.success(ui.plain(queued), icon=":material/queue:")
if task_id:
    st.info("Your story is being written.", icon=":material/hourglass_top:")
    st.page_link(
        ui.SCENES_PAGE,
        label="See its progress",
        icon=":material/arrow_forward:",
        query_params={"writing": task_id},
    )

if notice := st.session_state.pop("quiz_notice", ""):
    st.error(notice, icon=":material/error:")
if errors:
    st.error(f"Please fix {len(errors)} answer(s) above.", icon=":material/error:")
