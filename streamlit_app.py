"""foxpipe: illustrated animal story videos, from a quiz to 20 approved images and a video."""

import logging

import streamlit as st

from foxpipe import app as workflow
from foxpipe import ui

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
workflow.install_log_redaction()  # no key in any log line, in any letter case

st.set_page_config(page_title="foxpipe", page_icon=":material/pets:", layout="wide")

# st.navigation runs on every run, before the access gate, so deep links such as
# /gallery?job=... survive the gate.
ui.init_state()
page = st.navigation(
    [
        st.Page(
            ui.QUIZ_PAGE,
            title="Quiz",
            icon=":material/quiz:",
            default=True,
            help="Answer a few questions about your hero; the story is written from them.",
        ),
        st.Page(
            ui.SCENES_PAGE,
            title="Scenes",
            icon=":material/edit_note:",
            help="Read and edit the 20 scenes, rewrite any one, then approve them.",
        ),
        st.Page(
            ui.HERO_PAGE,
            title="Hero",
            icon=":material/person_pin:",
            help="Approve the hero's reference sheet; every scene image is drawn from it.",
            visibility="visible" if ui.settings().openai_live else "hidden",
        ),
        st.Page(
            ui.GALLERY_PAGE,
            title="Gallery",
            icon=":material/photo_library:",
            help="Watch the 20 images arrive, approve or reject each, make the video, download.",
        ),
        st.Page(
            ui.VOICE_PAGE,
            title="Voice",
            icon=":material/record_voice_over:",
            help="The Short's narrator and style, its 20 spoken lines, and the music.",
        ),
        st.Page(
            ui.HISTORY_PAGE,
            title="History",
            icon=":material/history:",
            help="Stories made on this app, with links to reopen their galleries.",
        ),
        st.Page(
            ui.LIBRARY_PAGE,
            title="Library",
            icon=":material/groups:",
            help="Saved heroes: start a new story with one, rename, export or import them.",
        ),
        st.Page(
            ui.QUEUE_PAGE,
            title="Queue",
            icon=":material/queue:",
            help="Several stories made one after another, each up to the review.",
        ),
        st.Page(
            "pages/insights.py",
            title="Insights",
            icon=":material/insights:",
            help="What the reviews say: first-try approvals, rejections, continuity checks and fixes.",
        ),
    ],
    position="top" if ui.allowed() else "hidden",
)

ui.entry_gate()
if page.url_path != "scenes":
    # The Scenes page's Approve switches pages in the run its click starts; a click the browser
    # delivered late can run on another page, where no switch is wanted (nor left for later).
    st.session_state.pop("go_approving", None)
page.run()
