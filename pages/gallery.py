import logging
import time
from pathlib import Path

import streamlit as st

from foxpipe import app as workflow
from foxpipe import ui
from foxpipe.app import GuardError, Refused, StoreError, storage_message
from foxpipe.domain import continuity, frames, prompts
from foxpipe.domain.lifecycle import SlotEvent, can
from foxpipe.domain.models import ClipStatus, Job, SlotStatus

log = logging.getLogger("foxpipe.pages.gallery")

ui.page_start()
settings = ui.settings()
studio = ui.studio()
approved = ui.approval()  # the scenes just approved: their prompts are written first
job = ui.require_job(
    studio,
    "No gallery yet: answer the quiz and approve your scenes first.",
    ui.QUIZ_PAGE,
    "Start with the quiz",
)
job_id = job.id

# Keep the id in the URL (reload and sharing reopen this gallery).
if st.query_params.get("job") != job_id:
    st.query_params["job"] = job_id
if approved is not None and approved.sheet_first:  # the hero's references come first
    st.info(
        "The hero's reference sheet is drawn and approved before the images.",
        icon=":material/badge:",
    )
    st.page_link(ui.HERO_PAGE, label="Open the Hero page", icon=":material/arrow_forward:")

STATUS_LABEL = {
    SlotStatus.QUEUED: ":gray-badge[:material/schedule: queued]",
    SlotStatus.GENERATING: ":blue-badge[:material/progress_activity: generating]",
    SlotStatus.READY: ":orange-badge[:material/rate_review: ready]",
    SlotStatus.APPROVED: ":green-badge[:material/check: approved]",
    SlotStatus.FAILED: ":red-badge[:material/error: failed]",
}


def act(fn, *args, **kwargs) -> None:  # noqa: ANN001
    """Run a registry action from a button. A cost-guard refusal, a change a teammate made
    meanwhile (Refused) and a storage failure each become a message; nothing is shown as done
    that was not stored. On someone else's gallery the first action asks first."""
    st.session_state.pop("gallery_notice", None)  # a new action: the last one's message is done
    if ui.not_mine(job) and job.id not in st.session_state.get("confirmed_galleries", set()):
        st.session_state.pending_action = (fn, args, kwargs)
        return
    try:
        fn(*args, **kwargs)
    except GuardError as e:
        st.session_state.gallery_notice = str(e)
    except Refused as e:
        st.session_state.gallery_notice = e.reason
    except StoreError as e:
        st.session_state.gallery_notice = f"Not saved: {e.message} Nothing was changed."
    except OSError as e:
        st.session_state.gallery_notice = storage_message(e)


def approve(jid: str, indexes: list[int], seen: dict[int, int]) -> None:
    """Approve what the reviewer saw: an image a teammate changed since is not approved, and
    the reviewer is told why."""
    act(approve_seen, jid, indexes, seen)


def approve_seen(jid: str, indexes: list[int], seen: dict[int, int]) -> None:
    n, refused = studio.approve(jid, indexes, seen=seen)
    if refused:
        st.session_state.gallery_notice = (
            (f"{n} approved. Not approved: " + "; ".join(refused) + ".")
            if n
            else ("Nothing was approved: " + "; ".join(refused) + ".")
        )


def reject_seen(jid: str, i: int, reasons: list[str], note: str, seen: int) -> None:
    studio.reject(jid, i, reasons, note, seen=seen)


def own_image(jid: str, i: int, key: str) -> None:
    """The uploaded file, checked, as the scene's new version (shown at once)."""
    f = st.session_state.get(key)
    if f is None:
        return
    try:
        data = workflow.validate_upload(f.getvalue())
    except ValueError as e:
        st.session_state.gallery_notice = f"Scene {i + 1}: {e}"
        return
    act(studio.use_own_image, jid, i, data)


def figures(j: Job) -> None:
    p = studio.progress(j.id)
    if p is None:
        return
    st.progress(p.done / p.total, text=f"{p.done} / {p.total} images ready · {p.approved} approved")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Images done", f"{p.done} / {p.total}")
    if settings.openai_live:
        shared = f", shared with {p.other_jobs} other job(s) right now" if p.other_jobs else ""
        c2.metric(
            "Images per minute",
            f"{p.rate:.1f} / {p.limit:g}",
            help=f"Achieved since the first request started, against the account's limit of {p.limit:g} per minute{shared}.",
        )
    else:
        c2.metric(
            "Images per minute",
            f"{p.rate:.1f}",
            help="Achieved since the first image started (offline renderer: no account limit).",
        )
    c3.metric("Elapsed", f"{p.elapsed:.0f} s")
    c4.metric(
        "Time left (est.)",
        f"{p.eta:.0f} s" if p.eta is not None else "—",
        help="Counts the images of other jobs sharing the account's limit.",
    )
    per_image = studio.cost_per_image()
    if per_image:
        made, usd = studio.cost_estimate(j, per_image)
        st.caption(
            f"Estimated cost so far: about ${usd:.2f} for {made} images "
            f"(~${per_image:.3f} each at {settings.openai_image_quality} quality)."
        )
        continuity_cost(j, per_image)  # continuity: checks so far and expected, expected fixes
    if p.learned is not None:
        st.caption(
            f":material/speed: Your account allows about {p.learned:g} images per minute "
            f"(IMAGES_PER_MINUTE is {settings.images_per_minute:g}); the app now sends at that rate."
        )
    if j.image_model != "offline":
        left = studio.budget_left(j)
        st.caption(
            f":material/savings: Images left: {left['story']} for this story "
            f"(MAX_IMAGES_PER_STORY), {left['today']} today for the whole app (DAILY_IMAGE_BUDGET)."
        )


def open_reject(jid: str, i: int, seen: int) -> None:
    st.session_state.rejecting = (jid, i, seen)  # the version the reviewer is rejecting
    preselect_defects(jid, i)  # continuity: a flagged image's defects are the reasons


def close_reject() -> None:
    st.session_state.pop("rejecting", None)


# One dialog for the whole gallery instead of a form in every tile: the tiles stay light, so
# the refreshing fragment stays fast. Session state keeps it open across refreshes.
@st.dialog("Reject this image", on_dismiss=close_reject)
def reject_dialog(jid: str, i: int, seen: int = -1) -> None:
    k = f"{jid}_{i}"
    st.caption(f"Scene {i + 1} is made again, with what you pick here added to its prompt.")
    reasons = st.multiselect(
        "What is wrong?",
        list(prompts.REJECT_REASONS) + list(continuity.DEFECTS),
        key=f"why_{k}",
        format_func=reason_label,
    )
    note = st.text_input("Note (optional)", key=f"note_{k}")
    if st.button("Reject and regenerate", key=f"no_{k}", type="primary"):
        close_reject()
        act(reject_seen, jid, i, reasons, note, seen)
        st.rerun()


# ---------------------------------------------------------------- continuity
# Each tile's on-model badge (score or defects), "Check again" for a failed check, the flagged
# tiles first, a flagged image's defects preselected in the Reject dialog, the checks' cost.
def reason_label(reason: str) -> str:
    return f"Hero: {reason}" if reason in continuity.DEFECTS else reason


def verdict_of(j: Job, i: int) -> continuity.Verdict | None:
    img = j.slots[i].image
    return continuity.Verdict.from_dict(img.verdict) if img is not None and img.verdict else None


def is_flagged(j: Job, i: int) -> bool:
    v = verdict_of(j, i)
    if v is None or not v.checked:
        return False
    return not v.on_model or v.score < studio.check_threshold(j)


def preselect_defects(jid: str, i: int) -> None:
    j = studio.get(jid)
    if j is None or not is_flagged(j, i):
        return
    v = verdict_of(j, i)
    assert v is not None
    st.session_state[f"why_{jid}_{i}"] = continuity.review_reasons(v) + list(v.defects)


def continuity_badge(j: Job, i: int) -> None:
    s = j.slots[i]
    if s.image is None or studio.check_mode(j) == "off" and not s.image.verdict:
        return
    if s.checking:
        st.caption(":blue-badge[:material/policy: checking against the hero…]")
        return
    v = verdict_of(j, i)
    if v is None:
        return
    text = ui.plain(v.badge())
    if not v.checked:
        st.caption(f":gray-badge[:material/help: {text}]", help=ui.plain(v.error) or None)
        if s.status.has_image:
            st.button(
                "Check again",
                key=f"recheck_{j.id}_{i}",
                icon=":material/policy:",
                on_click=studio.check_again,
                args=(j.id, i),
            )
        return
    fixed = " · automatic fix" if s.image.auto_fix else ""
    if is_flagged(j, i):
        st.caption(f":red-badge[:material/warning: {text}]{fixed}")
        if v.note:
            st.caption(ui.plain(v.note))
    else:
        st.caption(f":green-badge[:material/verified: {text}]{fixed}")


def tile_order(j: Job) -> list[int]:
    order = list(range(len(j.slots)))
    if st.session_state.get("flagged_first"):
        order.sort(
            key=lambda i: (not (is_flagged(j, i) and j.slots[i].status is SlotStatus.READY), i)
        )
    return order


def continuity_cost(j: Job, per_image: float) -> None:
    per_check = studio.check_cost()
    e = studio.check_estimate(j, per_image, per_check)
    if not per_check and not e["expected_fix_usd"]:
        return
    st.caption(
        f"Continuity checks: about ${e['checks_usd']:.3f} so far, ${e['expected_checks_usd']:.3f} "
        f"still expected; automatic fixes expected about ${e['expected_fix_usd']:.2f} "
        f"({studio.check_mode(j)} mode, threshold {studio.check_threshold(j)})."
    )


# ---------------------------------------------------------------- end of continuity


def tile(j: Job, i: int) -> None:
    s = j.slots[i]
    k = f"{j.id}_{i}"
    with st.container(border=True):
        st.markdown(f"**Scene {i + 1}** {STATUS_LABEL[s.status]}")
        bulk_checkbox(j, i)  # review in bulk (below)
        img = s.image
        if img is not None:
            ui.show_image(ui.image_src(img), width="stretch")
        else:
            st.caption(ui.plain(s.scene.text[:140]))
        if img is not None and img.path in ("edit", "generate"):
            st.caption(f"{img.model} · {img.path} · {img.seconds:.0f} s · attempt {s.attempts}")
        continuity_badge(j, i)
        if s.error and s.status is not SlotStatus.FAILED:
            st.caption(f":orange[{ui.plain(s.error)}]")
        if s.upload_error:
            st.caption(f":orange[Not uploaded (kept on this server): {ui.plain(s.upload_error)}]")
            if i in studio.uploads_running(j.id):
                st.caption(":material/cloud_upload: Uploading again…")
            else:
                st.button(
                    "Retry upload",
                    key=f"upload_{k}",
                    on_click=studio.retry_upload,
                    args=(j.id, i),
                    icon=":material/cloud_upload:",
                )
        if (
            s.status is SlotStatus.READY and not s.checking
        ):  # a checking image waits for its verdict
            # One under the other: side by side, a narrow tile cuts the labels to "App…" and "R…".
            st.button(
                "Approve anyway" if is_flagged(j, i) else "Approve",
                key=f"ok_{k}",
                on_click=approve,
                args=(j.id, [i], {i: s.current}),
                width="stretch",
            )
            st.button(
                "Reject",
                key=f"rej_{k}",
                width="stretch",
                on_click=open_reject,
                args=(j.id, i, s.current),
            )
        elif s.status is SlotStatus.FAILED:
            st.error(ui.plain(s.error or "Failed."), icon=":material/error:")
            st.button(
                "Retry",
                key=f"retry_{k}",
                on_click=act,
                args=(studio.retry, j.id, i),
                icon=":material/refresh:",
            )
            with st.popover("Edit prompt and retry"):
                st.caption(
                    "This is the whole prompt, the review's fix included: it is sent exactly as "
                    "written here."
                )
                new_prompt = st.text_area(
                    "Prompt",
                    value=prompts.with_feedback(s.prompt, s.feedback),
                    key=f"prompt_{k}",
                    height=200,
                )
                st.button(
                    "Retry with this prompt",
                    key=f"retry_prompt_{k}",
                    on_click=act,
                    args=(studio.retry, j.id, i, new_prompt),
                )
            stuck_scene(j, i)
        if (
            len(s.versions) > 1 or (s.status is SlotStatus.FAILED and s.versions)
        ) and not s.status.in_flight:
            options = list(range(len(s.versions)))
            pick = st.selectbox(
                "Version",
                options,
                index=s.current,
                key=f"ver_{k}_{len(s.versions)}",
                format_func=lambda v: f"Version {v + 1}",
            )
            if pick != s.current or s.status is SlotStatus.FAILED:
                st.button(
                    "Use this version",
                    key=f"use_{k}",
                    on_click=act,
                    args=(studio.restore_version, j.id, i, pick),
                )


# ---------------------------------------------------------------- a scene that cannot be made
# A failed scene can always be finished: approve the image it still has, pick an earlier
# version (above), or, as a last resort, upload an image of the user's own.
def stuck_scene(j: Job, i: int) -> None:
    s = j.slots[i]
    k = f"{j.id}_{i}"
    if can(s, SlotEvent.APPROVE):
        st.button(
            f"Approve version {s.current + 1} as it is",
            key=f"ok_failed_{k}",
            on_click=approve,
            args=(j.id, [i], {i: s.current}),
            icon=":material/check:",
            help="The last image this scene had; the failed retry did not replace it.",
        )
    with (
        st.container(key=f"tile_own_{k}"),
        st.popover("Use an image of your own", icon=":material/upload:"),
    ):
        st.caption(
            f"PNG, JPEG or WebP, at most {workflow.MAX_IMAGE_UPLOAD_MB} MB. It becomes this scene's "
            "next version; approve it like any other."
        )
        st.file_uploader(
            "Your image",
            type=["png", "jpg", "jpeg", "webp"],
            key=f"own_{k}",
            on_change=own_image,
            args=(j.id, i, f"own_{k}"),
        )


# ---------------------------------------------------------------- review in bulk
# Select several tiles (a checkbox on each ready or failed tile) and approve, reject with one
# reason, or regenerate them together; approve every image the continuity check found
# on-model; a compact mode shows one large image beside its scene text and narration line,
# with keyboard shortcuts (N next, P previous, A approve, X reject).


def bulk_key(jid: str, i: int) -> str:
    return f"sel_{jid}_{i}"


def bulk_checkbox(j: Job, i: int) -> None:
    if j.slots[i].status in (SlotStatus.READY, SlotStatus.FAILED):
        st.checkbox("Select", key=bulk_key(j.id, i))


def bulk_selected(j: Job) -> list[int]:
    return [i for i in workflow.selectable(j) if st.session_state.get(bulk_key(j.id, i))]


def bulk_clear(j: Job) -> None:
    for i in range(len(j.slots)):
        st.session_state.pop(bulk_key(j.id, i), None)


def bulk_act(kind: str) -> None:
    j = studio.get(job_id)
    if j is None:
        return
    chosen = bulk_selected(j)
    ss = st.session_state
    if not chosen and kind != "on_model":
        ss.bulk_notice = 'Select images first: tick "Select" on the tiles.'
        return
    try:
        if kind == "approve":
            n = studio.bulk_approve(job_id, chosen)
            ss.bulk_notice = f"Approved {n} image(s)."
        elif kind == "reject":
            why = ss.get("bulk_reason")
            done, skipped = studio.bulk_reject(
                job_id, chosen, [why] if why else [], ss.get("bulk_note", "")
            )
            ss.bulk_notice = " ".join(
                [f"Rejected {len(done)} image(s); they are being made again.", *skipped]
            )
        elif kind == "regenerate":
            ss.bulk_notice = f"Making {len(studio.bulk_regenerate(job_id, chosen))} image(s) again."
        elif kind == "on_model":
            ss.bulk_notice = f"Approved {studio.approve_on_model(job_id)} on-model image(s)."
    except GuardError as e:
        ss.bulk_notice = str(e)
    bulk_clear(j)


def compact_move(delta: int) -> None:
    j = studio.get(job_id)
    if j is not None:
        st.session_state.compact_at = workflow.review_step(
            j, st.session_state.get("compact_at", 0), delta
        )


def compact_act(kind: str, i: int, seen: int) -> None:
    """Approve or reject the image the reviewer sees (scene ``i``, version ``seen``): one a
    teammate changed meanwhile is not acted on, and the reviewer is told why."""
    try:
        if kind == "approve":
            n, refused = studio.approve(job_id, [i], seen={i: seen})
            now = studio.get(job_id)
            if not n and not refused and now and now.slots[i].status is SlotStatus.APPROVED:
                # The very version shown was approved meanwhile by a teammate: done, move on.
                st.session_state.bulk_notice = f"Scene {i + 1} was already approved by a teammate."
            elif not n:
                why = "; ".join(refused) or "it changed meanwhile"
                st.session_state.bulk_notice = f"Scene {i + 1} was not approved: {why}."
                return
        else:
            why = st.session_state.get("compact_reason")
            studio.reject(
                job_id, i, [why] if why else [], st.session_state.get("compact_note", ""), seen=seen
            )
    except GuardError as e:
        st.session_state.bulk_notice = str(e)
        return
    except Refused as e:
        st.session_state.bulk_notice = e.reason
        return
    compact_move(1)


def compact_review(j: Job) -> bool:
    """One large image beside its scene text and narration line; True when shown (no grid)."""
    if not st.session_state.get("bulk_compact"):
        return False
    i = min(max(0, st.session_state.get("compact_at", 0)), len(j.slots) - 1)
    st.session_state.compact_at = i
    s = j.slots[i]
    left, right = st.columns([3, 2])
    with left:
        if s.image is not None:
            ui.show_image(
                s.image.local_path if not s.image.uploaded else s.image.url, width="stretch"
            )
        else:
            st.info("No image yet.", icon=":material/hourglass_top:")
    with right:
        st.markdown(f"**Scene {i + 1} of {len(j.slots)}** {STATUS_LABEL[s.status]}")
        st.markdown(ui.plain(s.scene.text))
        if line := workflow.narration_line(j, i):
            st.caption(f":material/record_voice_over: {ui.plain(line)}")
        verdict = workflow.review_verdict(s.image)
        if verdict:
            st.caption(
                f"Continuity: {'on-model' if workflow.verdict_on_model(s.image) else 'check'} "
                f"({verdict.get('score', '?')})"
            )
        nav = st.columns(2)
        nav[0].button(
            "Previous",
            key="compact_prev",
            icon=":material/arrow_back:",
            on_click=compact_move,
            args=(-1,),
            shortcut=workflow.REVIEW_SHORTCUTS["previous"],
            width="stretch",
        )
        nav[1].button(
            "Next",
            key="compact_next",
            icon=":material/arrow_forward:",
            on_click=compact_move,
            args=(1,),
            shortcut=workflow.REVIEW_SHORTCUTS["next"],
            width="stretch",
        )
        ready = s.status is SlotStatus.READY and not s.checking
        if s.checking:
            st.caption("Being checked against the hero…")
        st.button(
            "Approve",
            key="compact_approve",
            type="primary",
            icon=":material/check:",
            on_click=compact_act,
            args=("approve", i, s.current),
            disabled=not ready,
            shortcut=workflow.REVIEW_SHORTCUTS["approve"],
            width="stretch",
        )
        st.selectbox("Reason to reject", [""] + list(prompts.REJECT_REASONS), key="compact_reason")
        st.button(
            "Reject and regenerate",
            key="compact_reject",
            icon=":material/close:",
            on_click=compact_act,
            args=("reject", i, s.current),
            disabled=not ready,
            shortcut=workflow.REVIEW_SHORTCUTS["reject"],
            width="stretch",
        )
        st.caption("Keys: N next · P previous · A approve · X reject")
    return True


def bulk_bar(j: Job) -> None:
    st.subheader("Review in bulk")
    st.toggle("Compact review (one large image at a time)", key="bulk_compact")
    if notice := st.session_state.get("bulk_notice", ""):  # kept until the next bulk action
        st.info(ui.plain(notice), icon=":material/checklist:")
    # The tiles' checkboxes live in the refreshing grid: these buttons read them when clicked.
    on = workflow.on_model(j)
    cols = st.columns(4)
    cols[0].button(
        "Approve selected",
        key="bulk_approve",
        icon=":material/done_all:",
        on_click=bulk_act,
        args=("approve",),
        width="stretch",
    )
    cols[1].button(
        "Regenerate selected",
        key="bulk_regenerate",
        icon=":material/refresh:",
        on_click=bulk_act,
        args=("regenerate",),
        width="stretch",
    )
    cols[2].button(
        f"Approve all on-model ({len(on)})",
        key="bulk_on_model",
        icon=":material/verified:",
        on_click=bulk_act,
        args=("on_model",),
        disabled=not on,
        width="stretch",
        help="Every ready image the continuity check found on-model.",
    )
    with cols[3].popover("Reject selected", icon=":material/close:", width="stretch"):
        st.selectbox("One reason for all of them", list(prompts.REJECT_REASONS), key="bulk_reason")
        st.text_input("Note (optional)", key="bulk_note")
        st.button(
            "Reject and regenerate them",
            key="bulk_reject",
            type="primary",
            on_click=bulk_act,
            args=("reject",),
        )
    if j.references and studio.hero_saved_from(j.id) is None:
        st.button(
            "Save this hero to the library",
            key="gallery_save_hero",
            icon=":material/bookmark_add:",
            on_click=save_hero_from_gallery,
        )


def save_hero_from_gallery() -> None:
    j = studio.get(job_id)
    try:
        h = studio.save_hero(j) if j else None
        st.session_state.bulk_notice = (
            f"{h.name} is saved in the library." if h else "Gallery not found."
        )
    except workflow.HeroError as e:
        st.session_state.bulk_notice = str(e)


refresh = settings.gallery_refresh if (not job.done or studio.uploads_running(job_id)) else None


# ---------------------------------------------------------------- someone else acted
# An idle gallery (nothing running, so no live refresh) still looks at the job's revision now
# and then, and redraws when a teammate approved, rejected or restored something.
@st.fragment(run_every=None if refresh else settings.gallery_idle_refresh)
def watch() -> None:
    j = studio.get(job_id)
    if j is None or refresh:
        return
    shown = st.session_state.get("gallery_revision")
    if shown is not None and j.revision != shown:
        st.session_state.gallery_revision = j.revision
        st.rerun(scope="app")
    st.session_state.gallery_revision = j.revision


# ---------------------------------------------------------------- someone else's gallery
@st.dialog("This gallery is not yours")
def confirm_dialog() -> None:
    st.write("Someone else made this story. Act on their gallery anyway? (Asked once per gallery.)")
    a, b = st.columns(2)
    if a.button("Yes, go ahead", key="confirm_other", type="primary"):
        st.session_state.setdefault("confirmed_galleries", set()).add(job_id)
        fn, args, kwargs = st.session_state.pop("pending_action")
        act(fn, *args, **kwargs)
        st.rerun()
    if b.button("Cancel", key="cancel_other"):
        st.session_state.pop("pending_action", None)
        st.rerun()


@st.fragment(run_every=refresh)
def live() -> None:
    started = time.perf_counter()
    j = studio.get(job_id)
    if j is None:
        return
    # Polling state changed (work finished or restarted, or all approved): one full rerun so
    # the refresh interval and the sections below follow, asked for before anything is drawn.
    # A run that drew first (a click's Reject dialog, when the last check ended meanwhile) sent
    # blocks the browser could place after the full rerun had begun, on a tree without their
    # parent: it stopped drawing the page ("Cannot set a node at a delta path").
    running = not j.done
    state = (running, j.all_approved, bool(studio.uploads_running(j.id)))
    before = st.session_state.get("gallery_state")
    st.session_state.gallery_state = state
    if before not in (None, state):
        st.rerun()
    try:
        figures(j)
    except Exception as e:  # a damaged record must not hide the images and their buttons
        log.warning("[GALLERY] figures of job %s cannot be shown: %s", j.id[:6], type(e).__name__)
        st.warning(
            f"The progress figures cannot be shown ({type(e).__name__}).", icon=":material/warning:"
        )
    if j.notice:
        st.error(ui.plain(j.notice), icon=":material/error:")
    if studio.problem:  # the store could not be written: nothing is shown as saved that was not
        st.error(
            f"Storage problem: {ui.plain(studio.problem)} Recent changes may not be saved.",
            icon=":material/database:",
        )
    if notice := st.session_state.pop("prompt_notice", ""):
        st.warning(ui.plain(notice), icon=":material/warning:")
    # Kept until the reviewer's next action: a refresh of the page (a check ending, a teammate
    # acting) must not wipe what the reviewer was just told.
    if notice := st.session_state.get("gallery_notice", ""):
        st.warning(ui.plain(notice), icon=":material/savings:")
    bar = st.columns([1, 1, 1, 3])
    if running:
        bar[0].button(
            "Stop", icon=":material/stop:", key="stop_job", on_click=act, args=(studio.cancel, j.id)
        )
    ready = [s.index for s in j.slots if s.status is SlotStatus.READY and not s.checking]
    if ready:
        bar[1].button(
            f"Approve all ({len(ready)})",
            icon=":material/done_all:",
            key="approve_all",
            on_click=approve,
            args=(j.id, ready, {i: j.slots[i].current for i in ready}),
        )
    failed = [s.index for s in j.slots if s.status is SlotStatus.FAILED]
    if failed and not running:
        bar[2].button(
            f"Retry failed ({len(failed)})",
            icon=":material/refresh:",
            key="retry_failed",
            on_click=act,
            args=(studio.retry_failed, j.id),
        )
    bar[3].toggle(
        "Show flagged first",
        key="flagged_first",  # continuity: off-model images first
        help="Images the continuity check flagged, waiting for your review, come first.",
    )
    order = tile_order(j)
    per_row = 5 if frames.is_portrait(j.size) else 4
    # The compact review mode (review in bulk, below) shows one large image instead of the grid.
    for start in range(
        0, 0 if compact_review(j) else len(j.slots), per_row
    ):  # row by row, so the rows stay aligned
        for i, col in zip(order[start : start + per_row], st.columns(per_row), strict=False):
            with col:
                try:
                    tile(j, i)
                except Exception as e:  # one bad scene (a damaged record) must not hide the others
                    log.warning(
                        "[GALLERY] scene %d of job %s cannot be shown: %s",
                        i + 1,
                        j.id[:6],
                        type(e).__name__,
                    )
                    st.error(
                        f"Scene {i + 1} cannot be shown ({type(e).__name__}); the other scenes are fine.",
                        icon=":material/error:",
                    )
    # The approval count in the same read as the figures above: the two never disagree.
    approved = sum(1 for s in j.slots if s.status is SlotStatus.APPROVED)
    if j.all_approved:
        st.success("All images approved.", icon=":material/celebration:")
    else:
        st.caption(
            f"Approve all {len(j.slots)} images to make the video. {approved} approved so far."
        )
    ui.record_timing("gallery_fragment", started)
    st.session_state.gallery_revision = j.revision
    rejecting = st.session_state.get("rejecting")
    if rejecting and rejecting[0] == j.id:
        reject_dialog(*rejecting)  # a stale dialog is refused by the engine, with the reason
    if st.session_state.get("pending_action"):
        confirm_dialog()


st.title(ui.plain(job.story.title))
st.caption(
    f"{len(job.slots)} scenes · {job.image_model} · share this page's link to show this gallery to a teammate."
)
bulk_bar(studio.get(job_id) or job)  # review in bulk (above)
live()
watch()

st.divider()
final = studio.get(job_id) or job
st.download_button(
    "Download approved images (ZIP)",
    data=lambda: workflow.approved_zip(studio.get(job_id) or final),
    file_name=f"foxpipe-{job_id[:8]}.zip",
    mime="application/zip",
    icon=":material/download:",
    key="download_zip",
    on_click="ignore",
)

# ---------------------------------------------------------------- the finished Short: voice and music
# The narration is written as soon as the scenes are approved and spoken beside the images;
# the Voice page edits the lines, the narrator and the music.
st.divider()
voice_col, link_col = st.columns([3, 1], vertical_alignment="center")
if not final.narration_on:
    voice_col.markdown("**Narration** :gray-badge[off]: the Short has music and pictures only.")
elif not final.narration:
    voice_col.markdown("**Narration** :blue-badge[:material/progress_activity: writing the lines]")
else:
    counts = workflow.narration_summary(final)
    spoken = sum(1 for x in final.narration if x.text)
    badge = (
        ":green-badge[:material/check: ready]"
        if workflow.narration_ready(final)
        else f":red-badge[{counts['failed']} failed]"
        if counts["failed"]
        else f":blue-badge[{counts['ready']} of {spoken} spoken]"
    )
    voice_col.markdown(
        f"**Narration** {badge} · {ui.plain(final.voice)} · {workflow.narration_styles().get(final.narration_style, '')}"
        f" · about {final.short_seconds:.0f} s"
    )
music_label = final.music_name or {"builtin": "built-in ambient bed", "": "no music"}.get(
    final.music_path, "a track"
)
voice_col.caption(f"Music: {ui.plain(music_label)}.")
link_col.page_link(
    ui.VOICE_PAGE,
    label="Voice and music",
    query_params={"job": job_id},
    icon=":material/record_voice_over:",
)

# ---------------------------------------------------------------- videos
if final.all_approved:
    st.divider()
    st.subheader("Videos")
    choices = {p.key: p for p in studio.video_providers()}
    vjob = final
    busy = vjob.video is not None and vjob.video.running

    def start_video() -> None:
        ss = st.session_state
        provider = ss.get("video_provider", workflow.SLIDESHOW)
        scenes = (
            [n - 1 for n in ss.get("video_scenes", [])] if provider != workflow.SLIDESHOW else None
        )
        problem = studio.start_video(
            job_id,
            provider,
            scenes,
            ss.get("video_seconds", 4.0),
            ss.get("video_captions", True),
        )
        if problem:
            ss.video_notice = problem

    def retry_clip(index: int) -> None:
        if problem := studio.retry_clip(job_id, index):
            st.session_state.video_notice = problem

    provider = st.radio(
        "Make the video with",
        list(choices),
        format_func=lambda k: choices[k].label,
        key="video_provider",
        horizontal=True,
        disabled=busy,
    )
    left, right = st.columns(2)
    left.number_input(
        "Seconds per scene",
        min_value=0.5,
        max_value=15.0,
        value=4.0,
        step=0.5,
        key="video_seconds",
        disabled=busy,
        help="How long each image shows (scenes animated by a service use their clip's length).",
    )
    right.toggle(
        "Captions (burned in; an .srt file is made either way)",
        value=True,
        key="video_captions",
        disabled=busy,
    )
    if provider != workflow.SLIDESHOW:
        picked = st.multiselect(
            "Scenes to animate",
            list(range(1, len(vjob.slots) + 1)),
            default=list(range(1, len(vjob.slots) + 1)),
            key="video_scenes",
            disabled=busy,
            help="The other scenes show their image with a slow pan and zoom.",
        )
        cost = studio.video_estimate(provider, len(picked))
        ch = choices[provider]
        hero_note = " The approved hero sheet goes with each frame." if ch.references else ""
        st.info(
            f"{ch.label}: {len(picked)} clips of about {ch.clip_seconds:g} s, "
            f"estimated **US${cost:.2f}** (charged by the vendor; {ch.price_note}). "
            f"Clips take 1–5 minutes each.{hero_note}",
            icon=":material/payments:",
        )
    st.button(
        "Generate videos",
        type="primary",
        icon=":material/movie:",
        key="generate_video",
        on_click=act,
        args=(start_video,),
        disabled=busy,
    )
    if notice := st.session_state.pop("video_notice", ""):
        st.warning(ui.plain(notice), icon=":material/warning:")

    @st.fragment(run_every=settings.gallery_refresh if busy else None)
    def video_status() -> None:
        j = studio.get(job_id)
        v = j.video if j else None
        if v is None:
            return
        if v.running:
            st.progress(min(1.0, v.progress), text=v.stage or "Working…")
        if v.provider != workflow.SLIDESHOW:
            st.caption(
                f"Estimated US${v.estimate_usd:.2f} · submitted to the vendor so far US${v.spent_usd:.2f}"
            )
        if v.clips:
            cols = st.columns(5)
            for n, c in enumerate(v.clips):
                with cols[n % 5]:
                    st.markdown(f"**Scene {c.index + 1}** · {c.status.value}")
                    if c.status is ClipStatus.READY and c.local_path:
                        st.video(c.local_path)
                    elif c.status is ClipStatus.FAILED:
                        st.caption(f":red[{ui.plain(c.error)}]")
                        again = studio.clip_cost(v.provider)
                        st.button(
                            f"Retry (about US${again:.2f})",
                            key=f"retry_clip_{c.index}",
                            icon=":material/refresh:",
                            on_click=retry_clip,
                            args=(c.index,),
                            help="Submits this clip to the vendor again: a new clip is charged again.",
                        )
        if v.error and not v.running:
            st.error(ui.plain(v.error), icon=":material/error:")
        if v.status == "done" and v.path and not v.running:
            st.success(
                f"Story video ready: {v.duration:.1f} s, rendered in {v.render_seconds:.1f} s.",
                icon=":material/movie:",
            )
            if v.narrated:  # the finished Short: what it was made with
                st.caption(
                    f":material/record_voice_over: Narrated · captions timed to the voice · "
                    f"music: {ui.plain(v.music or 'none') if v.music_used else 'none'}"
                )
            if v.music_message:
                st.warning(ui.plain(v.music_message), icon=":material/music_off:")
            # Burned-in captions already show the text: a subtitle track on top would repeat it.
            # A 9:16 video at the page's full width would be two screens tall.
            st.video(
                v.path,
                subtitles=None if v.captions else (v.srt_path or None),
                width=360 if frames.is_portrait(j.size) else "stretch",
            )
            a, b = st.columns(2)
            a.download_button(
                "Download the video (MP4)",
                data=lambda p=v.path: Path(p).read_bytes(),
                file_name=f"foxpipe-{job_id[:8]}.mp4",
                mime="video/mp4",
                key="download_video",
                icon=":material/download:",
                on_click="ignore",
            )
            if v.srt_path:
                b.download_button(
                    "Download subtitles (.srt)",
                    data=lambda p=v.srt_path: Path(p).read_bytes(),
                    file_name=f"foxpipe-{job_id[:8]}.srt",
                    mime="text/plain",
                    key="download_srt",
                    icon=":material/subtitles:",
                    on_click="ignore",
                )
        # When work starts or stops, one full rerun so the polling interval and the form follow.
        if st.session_state.get("video_running") not in (None, v.running):
            st.session_state.video_running = v.running
            st.rerun()
        st.session_state.video_running = v.running

    video_status()
    st.download_button(
        "Download everything (ZIP)",
        data=lambda: workflow.everything_zip(studio.get(job_id) or final),
        file_name=f"foxpipe-{job_id[:8]}-all.zip",
        mime="application/zip",
        icon=":material/folder_zip:",
        key="download_everything",
        on_click="ignore",
        help="Images, clips, the story video and its .srt, story.json and prompts.csv.",
    )
