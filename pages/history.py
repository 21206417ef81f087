import streamlit as st

from foxpipe import ui

ui.page_start()
settings = ui.settings()
st.title("History")
st.caption("Stories made on this app. Open a gallery to review, download or continue it.")

# "Mine" by default: the stories this browser (or this signed-in account) made; "Team": all.
whose = st.segmented_control(
    "Show",
    ["Mine", "Team"],
    default="Mine",
    key="history_whose",
    help="Mine: stories made in this browser or with your sign-in. Team: everyone's.",
)
try:
    rows = ui.studio().past_stories(owner=None if whose == "Team" else ui.me())
except Exception as e:  # the store is unreachable: say so, the rest of the app still works
    st.error(
        f"History could not be read: {ui.plain(getattr(e, 'message', type(e).__name__))}",
        icon=":material/error:",
    )
    st.stop()
if not rows and whose != "Team":
    st.info(
        "No stories yet in this browser. They appear here once you approve a story's scenes; "
        "choose Team to see everyone's.",
        icon=":material/info:",
    )
    st.stop()
if not rows:
    st.info(
        "No stories yet. They appear here once you approve a story's scenes.",
        icon=":material/info:",
    )
    st.page_link(ui.QUIZ_PAGE, label="Start with the quiz", icon=":material/arrow_back:")
    st.stop()


def show(row: dict) -> None:
    with st.container(border=True):
        left, right = st.columns([4, 1], vertical_alignment="center")
        mine = "" if row["owner"] == ui.me() else " · someone else's"
        left.markdown(
            f"**{ui.plain(row['title'])}**  \n{ui.plain(row['time'])} · "
            f"{row['approved']} / {row['total']} images approved{mine}"
        )
        right.page_link(
            ui.GALLERY_PAGE,
            label="Open gallery",
            query_params={"job": row["job_id"]},
            icon=":material/photo_library:",
        )


# Each row on its own: one bad row says what is wrong and the others still show.
for row in rows:
    try:
        show(row)
    except Exception as e:
        st.error(f"This story cannot be listed ({type(e).__name__}).", icon=":material/error:")
