import streamlit as st

from foxpipe import history, ui

ui.page_start()
settings = ui.settings()
st.title("History")
st.caption("Stories made on this app. Open a gallery to review, download or continue it.")

try:
    rows = history.past_stories(ui.registry())
except Exception as e:  # the store is unreachable: say so, the rest of the app still works
    st.error(f"History could not be read: {getattr(e, 'message', type(e).__name__)}", icon=":material/error:")
    st.stop()
if not rows:
    st.info("No stories yet. They appear here once you approve a story's scenes.", icon=":material/info:")
    st.page_link(ui.QUIZ_PAGE, label="Start with the quiz", icon=":material/arrow_back:")
    st.stop()

for row in rows:
    with st.container(border=True):
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.text(row["title"])
        left.caption(f"{row['time']} · {row['approved']} / {row['total']} images approved")
        right.page_link(ui.GALLERY_PAGE, label="Open gallery", query_params={"job": row["job_id"]},
                        icon=":material/photo_library:")
