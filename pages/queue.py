"""The queue of stories: made one after another within the account's limits, each up to
the review; each with its state, its estimated cost and a link to its gallery when ready."""

import streamlit as st

from foxpipe import app as workflow
from foxpipe import ui
from foxpipe.app import QueueError, StoreError

ui.page_start()
settings = ui.settings()
studio = ui.studio()
ss = st.session_state


def add_file() -> None:
    f = ss.get("queue_file")
    if f is None:
        ss.queue_notice = "Choose a JSON or CSV file of answers first."
        return
    try:
        added = studio.enqueue_file(ss.owner, f.getvalue(), f.name)
        ss.queue_notice = f"Queued {len(added)} stories."
    except QueueError as e:
        ss.queue_notice = f"Nothing was queued:\n{e}"


def remove(item_id: str) -> None:
    if not studio.remove_from_queue(item_id):
        ss.queue_notice = "That story is being made (or is gone); it cannot be removed now."


st.title("Queue of stories")
st.caption(
    "Stories are written and their images made one after another, within the account's rate limit and "
    "today's image budget, up to the review. Add stories from the quiz, from a saved hero in the Library, "
    "or from a file of answers."
)
if notice := ss.pop("queue_notice", ""):
    st.info(ui.plain(notice), icon=":material/info:")

try:
    reason = studio.queue_paused()
    rows = studio.queue_items()
except StoreError as e:
    st.error(e.message, icon=":material/error:")
    st.stop()

if reason:
    st.warning(f"Paused: {ui.plain(reason)}", icon=":material/pause_circle:")
    st.button(
        "Resume",
        key="queue_resume",
        icon=":material/play_arrow:",
        on_click=studio.resume_queue,
    )
else:
    st.button(
        "Pause",
        key="queue_pause",
        icon=":material/pause:",
        on_click=studio.pause_queue,
        help="The story being made finishes its images; the next ones wait.",
    )

busy = any(r.state in (workflow.QUEUE_WRITING, workflow.QUEUE_IMAGES) for r in rows)


@st.fragment(run_every=settings.gallery_refresh if busy else None)
def table() -> None:
    items = studio.queue_items()
    if not items:
        st.info("The queue is empty.", icon=":material/playlist_add:")
    per_image = studio.cost_per_image()
    waiting_images = sum(i.images for i in items if i.state == workflow.QUEUE_WAITING)
    if items:
        st.caption(
            f"{len(items)} stories · {waiting_images} images still to make"
            + (f" (about US${waiting_images * per_image:.2f})" if per_image else " (offline: free)")
        )
    for n, it in enumerate(items, start=1):
        with st.container(border=True):
            a, b, c = st.columns([4, 2, 2])
            a.markdown(f"**{n}. {ui.plain(it.label)}**" + (" · saved hero" if it.hero_id else ""))
            b.markdown(f"`{workflow.QUEUE_STATE_LABEL.get(it.state, it.state)}`")
            cost = f"~{it.images} images" + (f" · ~US${it.usd:.2f}" if it.usd else "")
            c.caption(cost)
            if it.note:
                st.caption(ui.plain(it.note))
            if it.job_id and it.state in (workflow.QUEUE_IMAGES, workflow.QUEUE_READY):
                st.page_link(
                    ui.GALLERY_PAGE,
                    label="Open its gallery",
                    query_params={"job": it.job_id},
                    icon=":material/photo_library:",
                )
            if it.state not in (workflow.QUEUE_WRITING, workflow.QUEUE_IMAGES):
                st.button(
                    "Remove",
                    key=f"queue_remove_{it.id}",
                    on_click=remove,
                    args=(it.id,),
                    icon=":material/delete:",
                )
    now_busy = any(r.state in (workflow.QUEUE_WRITING, workflow.QUEUE_IMAGES) for r in items)
    if now_busy != busy:
        st.rerun()


table()

st.divider()
st.subheader("Add stories from a file")
st.caption(
    "JSON: a list of answer objects (keys as in the quiz: structure, animal, hero_name, setting…). "
    "CSV: one story per row, a header row of those keys. Missing answers take the quiz's defaults; "
    "every row is checked and nothing is queued from a file with a bad row."
)
st.file_uploader("Answers file", type=["json", "csv"], key="queue_file")
st.button(
    "Queue these stories", key="queue_add_file", icon=":material/playlist_add:", on_click=add_file
)
