import streamlit as st

from foxpipe import app as workflow
from foxpipe import ui
from foxpipe.app import GuardError
from foxpipe.domain import prompts

ui.page_start()
settings = ui.settings()
studio = ui.studio()
approved = ui.approval()  # the scenes just approved: their prompts are written first
job = ui.require_job(
    studio,
    "Approve your scenes first: the hero's reference sheet is drawn from them.",
    ui.SCENES_PAGE,
    "Go to the scenes",
)
job_id = job.id
# The images were started without this page: the approval started them (its saved hero's
# references changed meanwhile), or the queue or a teammate did. From a run a poll may have
# started (this run takes the approval its polling waited for, or this page's last full run
# left its drawing's polling on in the browser) a link is shown, not a switch (see ui.approval).
started_elsewhere = approved is not None and not approved.sheet_first
if st.session_state.get("go_gallery_from_hero") == job_id or workflow.hero_started(job):
    st.session_state.pop("go_gallery_from_hero", None)
    if approved is None and not st.session_state.get(f"hero_armed_{job_id}"):
        st.switch_page(ui.GALLERY_PAGE, query_params={"job": job_id})
    started_elsewhere = True
if started_elsewhere:
    st.session_state[f"hero_armed_{job_id}"] = False  # this run registers no polling
    st.info("This story's images are being made.", icon=":material/photo_library:")
    st.page_link(
        ui.GALLERY_PAGE,
        label="Open the gallery",
        icon=":material/arrow_forward:",
        query_params={"job": job_id},
    )
    st.stop()
if st.query_params.get("job") != job_id:
    st.query_params["job"] = job_id


def make(form: str, note_key: str = "") -> None:
    """Draw in the background (the cost guard first); the page polls the job."""
    note = st.session_state.get(note_key, "") if note_key else ""
    feedback = prompts.feedback_text([], note) if note else ""
    if problem := studio.start_hero_reference(job_id, form, feedback):
        st.session_state[f"hero_error_{job_id}"] = problem
    else:
        st.session_state.pop(f"hero_error_{job_id}", None)


def start(use_references: bool) -> None:
    try:
        studio.start_hero_images(job_id, use_references)
    except GuardError as e:
        st.session_state[f"hero_error_{job_id}"] = str(e)
        return
    st.session_state.go_gallery_from_hero = job_id


st.title("Hero reference sheet")
st.caption(
    "Every scene image is drawn from these references, so the hero keeps one look. "
    "Regenerate until you like them, then approve."
)
if notice := st.session_state.pop("prompt_notice", ""):
    st.warning(ui.plain(notice), icon=":material/warning:")

forms = workflow.hero_forms(job)
# First visit: draw the hero first; the powered-up form is drawn from it once it is there.
auto = f"hero_auto_{job_id}"
if not st.session_state.get(auto) and not job.hero_errors:
    st.session_state[auto] = True
    if forms and forms[0] not in job.references and not studio.hero_drawing(job_id, forms[0]):
        make(forms[0])

if error := st.session_state.get(f"hero_error_{job_id}"):
    st.error(ui.plain(error), icon=":material/error:")

with st.expander("Character sheet", icon=":material/badge:"):
    st.markdown(ui.plain(job.character_sheet))


def busy() -> bool:
    return any(studio.hero_drawing(job_id, f) for f in forms)


# ---------------------------------------------------------------- the hero library


def save_hero() -> None:
    j = studio.get(job_id)
    try:
        h = studio.save_hero(j) if j else None
        st.session_state[f"hero_saved_{job_id}"] = (
            f"{h.name} is saved in the library." if h else "Gone."
        )
    except workflow.HeroError as e:
        st.session_state[f"hero_error_{job_id}"] = str(e)


def save_to_library(j, ready: bool) -> None:  # noqa: ANN001
    if msg := st.session_state.get(f"hero_saved_{job_id}"):
        st.success(ui.plain(msg), icon=":material/bookmark_added:")
    elif ready and studio.hero_saved_from(job_id) is None:
        st.button(
            "Save this hero to the library",
            key="hero_save_library",
            icon=":material/bookmark_add:",
            on_click=save_hero,
            help="Reuse this hero (and these references) in later stories.",
        )


# The fragment's timer is set in full runs only: when a drawing starts or ends inside the
# fragment, one full run turns the polling on or off (before any button is drawn), so the
# buttons that open the gallery are never clicked while this page polls.
armed = busy()
st.session_state[f"hero_armed_{job_id}"] = armed


@st.fragment(run_every=1.0 if armed else None)
def sheet() -> None:
    j = studio.get(job_id) or job
    drawing = {f: studio.hero_drawing(job_id, f) for f in forms}
    # Chain: once the hero is drawn, draw the powered-up form from it (first visit only).
    if (
        len(forms) > 1
        and forms[0] in j.references
        and forms[1] not in j.references
        and not drawing[forms[1]]
        and not j.hero_errors
        and st.session_state.get(f"hero_chain_{job_id}") is None
    ):
        st.session_state[f"hero_chain_{job_id}"] = True
        make(forms[1])
        drawing[forms[1]] = studio.hero_drawing(job_id, forms[1])
    st.session_state[f"hero_polling_{job_id}"] = any(drawing.values())
    if any(drawing.values()) != armed:
        st.rerun()
    cols = st.columns(len(forms))
    for col, form in zip(cols, forms, strict=True):
        with col, st.container(border=True):
            st.markdown(f"**{workflow.hero_form_label(j, form)}**")
            path = j.references.get(form)
            if drawing[form]:
                st.info(
                    "Drawing… (up to a few minutes with a busy account)", icon=":material/brush:"
                )
            if path:
                ui.show_image(path, width="stretch")
            elif not drawing[form]:
                st.caption("Not drawn yet.")
            if err := j.hero_errors.get(form):
                st.error(err, icon=":material/error:")
            st.text_input("What should change? (optional)", key=f"hero_note_{job_id}_{form}")
            st.button(
                "Regenerate" if path else "Draw",
                key=f"hero_make_{job_id}_{form}",
                icon=":material/refresh:",
                on_click=make,
                args=(form, f"hero_note_{job_id}_{form}"),
                width="stretch",
                disabled=drawing[form],
            )
    ready = all(j.references.get(f) for f in forms) and not any(drawing.values())
    left, right = st.columns(2)
    left.button(
        "Approve and make the 20 images",
        type="primary",
        icon=":material/check:",
        key="hero_approve",
        on_click=start,
        args=(True,),
        disabled=not ready,
        width="stretch",
    )
    right.button(
        "Skip the references",
        icon=":material/skip_next:",
        key="hero_skip",
        on_click=start,
        args=(False,),
        width="stretch",
        # Not while a reference is drawn: it is paid for either way, and the gallery opens at
        # the click, which must not happen while this page is polling the drawing.
        disabled=any(drawing.values()),
        help="Make the 20 images from the text prompts alone; the hero may look different between scenes."
        + (" Available once the drawing has ended." if any(drawing.values()) else ""),
    )
    save_to_library(j, ready)  # the hero library
    if (
        st.session_state.get("go_gallery_from_hero") == job_id
    ):  # a click here reruns only this fragment
        st.session_state.pop("go_gallery_from_hero", None)
        st.switch_page(ui.GALLERY_PAGE, query_params={"job": job_id})


sheet()
