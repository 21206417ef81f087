"""The hero library: saved heroes with their reference images; rename, delete, export,
import, start a story or queue one with a saved hero."""

import streamlit as st

from foxpipe import app as workflow
from foxpipe import ui
from foxpipe.app import HeroError, QueueError, StoreError
from foxpipe.domain import quiz, structures

ui.page_start()
settings = ui.settings()
studio = ui.studio()
ss = st.session_state


def use(hero_id: str) -> None:
    h = studio.hero(hero_id)
    if h is None:
        ss.library_notice = "This hero is no longer in the library."
        return
    ss.hero_id = h.id
    ss.answers = workflow.with_hero(h, ss.answers)
    ss.go_quiz = True


def rename(hero_id: str) -> None:
    try:
        studio.rename_hero(hero_id, ss.get(f"name_{hero_id}", ""))
        ss.library_notice = "Renamed."
    except (HeroError, StoreError) as e:
        ss.library_notice = str(e)


def delete_controls(hero_id: str) -> None:
    """The tick that confirms and the Delete button, for a saved hero (readable or not)."""
    st.checkbox("Yes, delete this hero", key=f"sure_{hero_id}")
    st.button(
        "Delete",
        key=f"delete_{hero_id}",
        on_click=delete,
        args=(hero_id,),
        icon=":material/delete:",
    )


def delete(hero_id: str) -> None:
    if not ss.get(f"sure_{hero_id}"):
        ss.library_notice = "Tick “Yes, delete this hero” first."
        return
    try:
        studio.delete_hero(hero_id)
        ss.library_notice = "Deleted."
        if ss.get("hero_id") == hero_id:
            ss.hero_id = None
    except (HeroError, StoreError) as e:
        ss.library_notice = str(e)


def enqueue(hero_id: str) -> None:
    label = ss.get(f"structure_{hero_id}", structures.DEFAULT.label)
    answers = {**quiz.defaults(), structures.ANSWER_KEY: label}
    try:
        item = studio.enqueue(ss.owner, answers, hero_id=hero_id)
        ss.library_notice = f"Queued: {item.label} (about {item.images} images)."
    except QueueError as e:
        ss.library_notice = str(e)


def import_file() -> None:
    f = ss.get("hero_import")
    if f is None:
        return
    try:
        h = studio.import_hero(f.getvalue())
        ss.library_notice = f"Imported {h.name}."
    except HeroError as e:
        ss.library_notice = f"The file was not imported: {e}"
    except StoreError as e:
        ss.library_notice = e.message


if ss.pop("go_quiz", False):
    st.switch_page(ui.QUIZ_PAGE)

st.title("Hero library")
st.caption(
    "Save an approved hero from its Hero page or gallery, then start each new story with it: the quiz "
    "skips what the hero fixes and its reference sheet is reused, so no new reference image is paid for."
)
if notice := ss.pop("library_notice", ""):
    st.info(ui.plain(notice), icon=":material/info:")

damaged: list[tuple[str, str]] = []
try:
    saved, damaged = studio.hero_library()
except StoreError as e:
    st.error(e.message, icon=":material/error:")
    saved = []
for hero_id, name in damaged:
    with st.container(border=True):
        st.warning(
            f"The saved data of **{ui.plain(name)}** could not be read, so it is left out of "
            "the library. Every other hero works as before; delete this one to clear the message.",
            icon=":material/warning:",
        )
        delete_controls(hero_id)
if not saved and not damaged:
    st.info("No hero saved yet.", icon=":material/person_search:")

for h in saved:
    with st.container(border=True):
        st.subheader(ui.plain(h.label()))
        if h.look:
            st.caption(ui.plain(h.look))
        paths = h.reference_paths()
        if paths:
            cols = st.columns(max(2, len(paths)))
            for col, (form, path) in zip(cols, paths.items(), strict=False):
                with col:
                    ui.show_image(
                        path, caption="Hero" if form == "base" else "Powered-up form", width=220
                    )
        else:
            st.caption(
                "No reference images (saved offline): the Hero step draws them the first time."
            )
        with st.expander("Character sheet"):
            st.markdown(ui.plain(h.sheet))
        a, b, c = st.columns(3)
        a.button(
            "Start a story with this hero",
            key=f"use_{h.id}",
            type="primary",
            icon=":material/auto_stories:",
            on_click=use,
            args=(h.id,),
            width="stretch",
        )
        b.selectbox(
            "Structure", structures.LABELS, key=f"structure_{h.id}", label_visibility="collapsed"
        )
        c.button(
            "Add to the queue",
            key=f"enqueue_{h.id}",
            icon=":material/playlist_add:",
            on_click=enqueue,
            args=(h.id,),
            width="stretch",
        )
        with st.popover("Rename, export, delete", icon=":material/more_horiz:"):
            st.text_input(
                "Name", value=h.name, key=f"name_{h.id}", max_chars=workflow.MAX_HERO_NAME
            )
            st.button("Rename", key=f"rename_{h.id}", on_click=rename, args=(h.id,))
            st.download_button(
                "Export (JSON with the images)",
                data=lambda h=h: workflow.export_hero(h),
                file_name=f"hero-{h.name[:30]}.json",
                mime="application/json",
                key=f"export_{h.id}",
                on_click="ignore",
                icon=":material/download:",
            )
            delete_controls(h.id)

st.divider()
st.file_uploader(
    "Import a hero (a file exported here)",
    type=["json"],
    key="hero_import",
    help=f"At most {workflow.MAX_HERO_FILE_BYTES // 1_000_000} MB.",
)
st.button("Import", key="hero_import_go", on_click=import_file, icon=":material/upload:")
