import streamlit as st

from foxpipe import history, ui

ui.page_start()
settings = ui.settings()
st.title("History")
st.caption("Stories made on this app. Open a gallery to review, download or continue it.")

try:
    rows = history.past_stories(ui.registry())
except Exception as e:  # the store is unreachable: say so, the rest of the app still works
    st.error(f"History could not be read: {ui.plain(getattr(e, 'message', type(e).__name__))}",
             icon=":material/error:")
    st.stop()
if not rows:
    st.info("No stories yet. They appear here once you approve a story's scenes.", icon=":material/info:")
    st.page_link(ui.QUIZ_PAGE, label="Start with the quiz", icon=":material/arrow_back:")
    st.stop()


def show(row: dict) -> None:
    with st.container(border=True):
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.markdown(f"**{ui.plain(row['title'])}**  \n{ui.plain(row['time'])} · "
                      f"{row['approved']} / {row['total']} images approved")
        right.page_link(ui.GALLERY_PAGE, label="Open gallery", query_params={"job": row["job_id"]},
                        icon=":material/photo_library:")


# Each row on its own: one bad row says what is wrong and the others still show.
for row in rows:
    try:
        show(row)
    except Exception as e:
        st.error(f"This story cannot be listed ({type(e).__name__}).", icon=":material/error:")
