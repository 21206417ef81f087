import streamlit as st

from foxpipe import export, generation, prompts, ui
from foxpipe.jobs import GuardError
from foxpipe.models import Job, SlotStatus

settings = ui.settings()
reg = ui.registry()
job_id = ui.current_job_id()
ui.need(job_id is not None, "No gallery yet: answer the quiz and approve your scenes first.",
        ui.QUIZ_PAGE, "Start with the quiz")
job = reg.get(job_id)
if job is None:
    st.error("Gallery not found. The link may be mistyped or the job was removed.", icon=":material/search_off:")
    st.page_link(ui.QUIZ_PAGE, label="Start a new story", icon=":material/arrow_back:")
    st.stop()

# Keep the id in the URL (reload and sharing reopen this gallery) and in the session.
st.session_state.job_id = job_id
if st.query_params.get("job") != job_id:
    st.query_params["job"] = job_id

STATUS_LABEL = {
    SlotStatus.QUEUED: ":gray-badge[:material/schedule: queued]",
    SlotStatus.GENERATING: ":blue-badge[:material/progress_activity: generating]",
    SlotStatus.READY: ":orange-badge[:material/rate_review: ready]",
    SlotStatus.APPROVED: ":green-badge[:material/check: approved]",
    SlotStatus.REJECTED: ":violet-badge[:material/refresh: regenerating]",
    SlotStatus.FAILED: ":red-badge[:material/error: failed]",
}


def act(fn, *args) -> None:  # noqa: ANN001
    """Run a registry action from a button; a cost-guard refusal becomes a message."""
    try:
        fn(*args)
    except GuardError as e:
        st.session_state.gallery_notice = str(e)


def figures(j: Job) -> None:
    p = reg.progress(j.id)
    if p is None:
        return
    st.progress(p.done / p.total, text=f"{p.done} / {p.total} images ready · {p.approved} approved")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Images done", f"{p.done} / {p.total}")
    if settings.openai_live:
        shared = f", shared with {p.other_jobs} other job(s) right now" if p.other_jobs else ""
        c2.metric("Images per minute", f"{p.rate:.1f} / {p.limit:g}",
                  help=f"Achieved since the first request started, against the account's limit of {p.limit:g} per minute{shared}.")
    else:
        c2.metric("Images per minute", f"{p.rate:.1f}", help="Achieved since the first image started (offline renderer: no account limit).")
    c3.metric("Elapsed", f"{p.elapsed:.0f} s")
    c4.metric("Time left (est.)", f"{p.eta:.0f} s" if p.eta is not None else "—",
              help="Counts the images of other jobs sharing the account's limit.")
    per_image = reg.pipeline.cost_per_image()
    if per_image:
        made, usd = generation.cost_estimate(j, per_image)
        st.caption(f"Estimated cost so far: about ${usd:.2f} for {made} images "
                   f"(~${per_image:.3f} each at {settings.openai_image_quality} quality).")


def tile(j: Job, i: int) -> None:
    s = j.slots[i]
    k = f"{j.id}_{i}"
    with st.container(border=True):
        st.markdown(f"**Scene {i + 1}** {STATUS_LABEL[s.status]}")
        img = s.image
        if img is not None:
            st.image(img.thumb_path or img.url if not img.uploaded else img.url, width="stretch")
        else:
            st.caption(s.scene.text[:140])
        if img is not None and img.path in ("edit", "generate"):
            st.caption(f"{img.model} · {img.path} · {img.seconds:.0f} s · attempt {s.attempts}")
        if s.error and s.status is not SlotStatus.FAILED:
            st.caption(f":orange[{s.error}]")
        if s.upload_error:
            st.caption(f":orange[Not uploaded: {s.upload_error}]")
        if s.status is SlotStatus.READY:
            a, r = st.columns(2)
            a.button("Approve", key=f"ok_{k}", on_click=act, args=(reg.approve, j.id, [i]), width="stretch")
            with r.popover("Reject", width="stretch"):
                reasons = st.multiselect("What is wrong?", list(prompts.REJECT_REASONS), key=f"why_{k}")
                note = st.text_input("Note (optional)", key=f"note_{k}")
                st.button("Reject and regenerate", key=f"no_{k}", on_click=act,
                          args=(reg.reject, j.id, i, reasons, note))
        elif s.status is SlotStatus.FAILED:
            st.error(s.error or "Failed.", icon=":material/error:")
            st.button("Retry", key=f"retry_{k}", on_click=act, args=(reg.retry, j.id, i), icon=":material/refresh:")
            with st.popover("Edit prompt and retry"):
                new_prompt = st.text_area("Prompt", value=s.prompt, key=f"prompt_{k}", height=200)
                st.button("Retry with this prompt", key=f"retry_prompt_{k}", on_click=act,
                          args=(reg.retry, j.id, i, new_prompt))
        if len(s.versions) > 1 and not s.status.in_flight:
            options = list(range(len(s.versions)))
            pick = st.selectbox("Version", options, index=s.current, key=f"ver_{k}_{len(s.versions)}",
                                format_func=lambda v: f"Version {v + 1}")
            if pick != s.current:
                st.button("Use this version", key=f"use_{k}", on_click=reg.restore_version, args=(j.id, i, pick))


first = reg.get(job_id)
refresh = settings.gallery_refresh if (first and not first.done) else None


@st.fragment(run_every=refresh)
def live() -> None:
    j = reg.get(job_id)
    if j is None:
        return
    figures(j)
    if j.notice:
        st.error(j.notice, icon=":material/error:")
    if notice := st.session_state.pop("prompt_notice", ""):
        st.warning(notice, icon=":material/warning:")
    if notice := st.session_state.pop("gallery_notice", ""):
        st.warning(notice, icon=":material/savings:")
    running = not j.done
    bar = st.columns([1, 1, 1, 3])
    if running:
        bar[0].button("Stop", icon=":material/stop:", key="stop_job", on_click=reg.cancel, args=(j.id,))
    ready = [s.index for s in j.slots if s.status is SlotStatus.READY]
    if ready:
        bar[1].button(f"Approve all ({len(ready)})", icon=":material/done_all:", key="approve_all",
                      on_click=reg.approve, args=(j.id, ready))
    failed = [s.index for s in j.slots if s.status is SlotStatus.FAILED]
    if failed and not running:
        bar[2].button(f"Retry failed ({len(failed)})", icon=":material/refresh:", key="retry_failed",
                      on_click=act, args=(reg.retry_failed, j.id))
    cols = st.columns(5 if j.size.startswith("1024x1536") else 4)
    for i in range(len(j.slots)):
        with cols[i % len(cols)]:
            tile(j, i)
    # Polling state changed (work finished or restarted, or all approved): one full rerun
    # so the refresh interval and the sections below follow.
    state = (running, j.all_approved)
    if st.session_state.get("gallery_state") not in (None, state):
        st.session_state.gallery_state = state
        st.rerun()
    st.session_state.gallery_state = state


st.title(job.story.title)
st.caption(
    f"{len(job.slots)} scenes · {job.image_model} · share this page's link to show this gallery to a teammate."
)
live()

st.divider()
final = reg.get(job_id) or job
if final.all_approved:
    st.success("All images approved.", icon=":material/celebration:")
else:
    approved = sum(1 for s in final.slots if s.status is SlotStatus.APPROVED)
    st.caption(f"Approve all {len(final.slots)} images to make the video. {approved} approved so far.")
st.download_button(
    "Download approved images (ZIP)",
    data=lambda: export.build_zip(reg.get(job_id) or final),
    file_name=f"foxpipe-{job_id[:8]}.zip",
    mime="application/zip",
    icon=":material/download:",
    key="download_zip",
    on_click="ignore",
)
