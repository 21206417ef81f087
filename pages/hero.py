import streamlit as st

from foxpipe import ui
from foxpipe.domain import prompts
from foxpipe.engine import hero
from foxpipe.engine.jobs import GuardError
from foxpipe.providers.base import ProviderError

ui.page_start()
settings = ui.settings()
reg = ui.registry()
job = ui.require_job(reg, "Approve your scenes first: the hero's reference sheet is drawn from them.",
                     ui.SCENES_PAGE, "Go to the scenes")
job_id = job.id
if st.session_state.get("go_gallery_from_hero") == job_id or hero.started(job):
    st.session_state.pop("go_gallery_from_hero", None)
    st.switch_page(ui.GALLERY_PAGE, query_params={"job": job_id})
if st.query_params.get("job") != job_id:
    st.query_params["job"] = job_id


def make(form: str, note_key: str = "") -> None:
    note = st.session_state.get(note_key, "") if note_key else ""
    feedback = prompts.feedback_text([], note) if note else ""
    try:
        hero.make_reference(reg, job_id, form, feedback)
        st.session_state.pop(f"hero_error_{job_id}", None)
    except ProviderError as e:
        st.session_state[f"hero_error_{job_id}"] = (
            f"{hero.FORM_LABEL[form]} could not be drawn: {settings.redact(e.message)}"
        )


def start(use_references: bool) -> None:
    try:
        hero.start_images(reg, job_id, use_references)
    except GuardError as e:
        st.session_state[f"hero_error_{job_id}"] = str(e)
        return
    st.session_state.go_gallery_from_hero = job_id


st.title("Hero reference sheet")
st.caption("Every scene image is drawn from these references, so the hero keeps one look. "
           "Regenerate until you like them, then approve.")
if notice := st.session_state.pop("prompt_notice", ""):
    st.warning(ui.plain(notice), icon=":material/warning:")

# First visit: draw what is missing (stops at the first failure, which is shown below).
auto = f"hero_auto_{job_id}"
if not st.session_state.get(auto):
    st.session_state[auto] = True
    with st.spinner("Drawing the hero's reference sheet…"):
        for form in hero.FORMS:
            if form not in (reg.get(job_id) or job).references:
                make(form)
                if st.session_state.get(f"hero_error_{job_id}"):
                    break
    job = reg.get(job_id) or job

if error := st.session_state.get(f"hero_error_{job_id}"):
    st.error(ui.plain(error), icon=":material/error:")

with st.expander("Character sheet", icon=":material/badge:"):
    st.markdown(ui.plain(job.character_sheet))

cols = st.columns(len(hero.FORMS))
for col, form in zip(cols, hero.FORMS, strict=True):
    with col, st.container(border=True):
        st.markdown(f"**{hero.FORM_LABEL[form]}**")
        path = job.references.get(form)
        if path:
            ui.show_image(path, width="stretch")
        else:
            st.caption("Not drawn yet.")
        st.text_input("What should change? (optional)", key=f"hero_note_{job_id}_{form}")
        st.button("Regenerate" if path else "Draw", key=f"hero_make_{job_id}_{form}", icon=":material/refresh:",
                  on_click=make, args=(form, f"hero_note_{job_id}_{form}"), width="stretch")

ready = all(job.references.get(f) for f in hero.FORMS)
left, right = st.columns(2)
left.button("Approve and make the 20 images", type="primary", icon=":material/check:", key="hero_approve",
            on_click=start, args=(True,), disabled=not ready, width="stretch")
right.button("Skip the references", icon=":material/skip_next:", key="hero_skip", on_click=start, args=(False,),
             help="Make the 20 images from the text prompts alone; the hero may look different between scenes.",
             width="stretch")
