import zlib

import streamlit as st

from foxpipe import app as workflow
from foxpipe import ui
from foxpipe.app import GuardError
from foxpipe.domain.narration import STYLES, LineStatus

ui.page_start()
settings = ui.settings()
studio = ui.studio()
job = ui.require_job(
    studio,
    "No Short yet: answer the quiz and approve your scenes first.",
    ui.QUIZ_PAGE,
    "Start with the quiz",
)
job_id = job.id
if st.query_params.get("job") != job_id:
    st.query_params["job"] = job_id

choice = studio.voice()
BADGE = {
    LineStatus.EMPTY: ":gray-badge[silent]",
    LineStatus.QUEUED: ":gray-badge[:material/schedule: not spoken yet]",
    LineStatus.SYNTHESIZING: ":blue-badge[:material/progress_activity: speaking]",
    LineStatus.READY: ":green-badge[:material/check: spoken]",
    LineStatus.FAILED: ":red-badge[:material/error: failed]",
}

st.title("Voice and music")
st.caption(f"{ui.plain(job.story.title)} · the narrator, the 20 lines, the music of the Short.")
st.page_link(
    ui.GALLERY_PAGE,
    label="Back to the gallery",
    query_params={"job": job_id},
    icon=":material/arrow_back:",
)

if notice := st.session_state.pop("voice_notice", ""):
    st.warning(ui.plain(notice), icon=":material/warning:")


def busy() -> bool:
    return (
        studio.narration_writing(job_id)
        or studio.narration_speaking(job_id)
        or bool(studio.lines_rewriting(job_id))
    )


def act(fn, *args) -> None:  # noqa: ANN001
    """A change from a widget; a message (cost guard, nothing to say) becomes a notice."""
    problem = fn(*args)
    if isinstance(problem, str) and problem:
        st.session_state.voice_notice = problem


# ---------------------------------------------------------------- the narrator
on = st.toggle(
    "Narrate the Short",
    value=job.narration_on,
    key="voice_on",
    help="Off: the Short has music and pictures only, each scene a few seconds.",
)
if on != job.narration_on:
    studio.set_narration(job_id, on)
    job = studio.get(job_id) or job

if choice.kind == "offline":
    st.info(f"**Basic offline voice.** {choice.note}", icon=":material/cloud_off:")
else:
    st.info(choice.note, icon=":material/record_voice_over:")

names = studio.voices()
left, mid, right = st.columns([2, 2, 1], vertical_alignment="bottom")
voice = left.selectbox(
    "Voice",
    names,
    index=names.index(job.voice) if job.voice in names else 0,
    key="voice_name",
    disabled=not on,
)
styles = list(STYLES)
style = mid.selectbox(
    "Narrator style",
    styles,
    format_func=lambda k: STYLES[k].label,
    index=styles.index(job.narration_style) if job.narration_style in styles else 0,
    key="voice_style",
    disabled=not on,
)
if on and (voice, style) != (job.voice, job.narration_style):
    studio.set_voice(job_id, voice, style)
    job = studio.get(job_id) or job


def start_preview() -> None:
    v, s = st.session_state.voice_name, st.session_state.voice_style
    try:  # a paid sample counts against the cost guard too
        st.session_state.preview_task = studio.start_voice_preview(v, s)
    except GuardError as e:
        st.session_state.voice_notice = str(e)
        return
    st.session_state.pop("preview_audio", None)


right.button(
    "Preview",
    icon=":material/play_circle:",
    key="preview_voice",
    on_click=start_preview,
    disabled=not on,
    help="One sample sentence in this voice and style"
    + ("" if choice.free else " (a few tenths of a cent)."),
)

length = st.number_input(
    "Length of the Short (seconds)",
    min_value=workflow.SHORT_LENGTH_MIN,
    max_value=workflow.SHORT_LENGTH_MAX,
    value=float(job.short_seconds),
    step=5.0,
    format="%.0f",
    key="short_length",
    disabled=not on,
    help="The lines are written to last about this long in all.",
)
if length != job.short_seconds:
    studio.set_length(job_id, length)
st.button(
    "Write the lines again for this length",
    key="rewrite_all_lines",
    icon=":material/edit_note:",
    disabled=not on or busy(),
    on_click=lambda: studio.start_writing_lines(job_id),
    help="Replaces every line (and its audio) with new ones from the scenes.",
)


@st.fragment(run_every=0.5 if st.session_state.get("preview_task") else None)
def preview_player() -> None:
    if tid := st.session_state.get("preview_task"):
        t = workflow.task(tid)
        if t is not None and t.running:
            st.caption(":material/hourglass_top: Speaking a sample…")
            return
        st.session_state.pop("preview_task")
        if t is None or t.status == "failed" or t.result.error:
            st.session_state.preview_error = (
                t.result.error if t and t.result else t.error if t else "Interrupted."
            )
        else:
            st.session_state.preview_audio = t.result.wav
        st.rerun()
    if err := st.session_state.get("preview_error"):
        st.warning(f"The preview could not be made: {ui.plain(err)}", icon=":material/warning:")
    if data := st.session_state.get("preview_audio"):
        st.audio(data, format="audio/wav")


preview_player()

# ---------------------------------------------------------------- the lines
st.subheader("The narration")


@st.fragment(run_every=settings.gallery_refresh if busy() else None)
def progress() -> None:
    j = studio.get(job_id)
    if j is None:
        return
    state = (
        studio.narration_writing(job_id),
        studio.narration_speaking(job_id),
        tuple(studio.lines_rewriting(job_id)),
    )
    if state[0]:
        st.info("Writing the 20 lines from your scenes…", icon=":material/hourglass_top:")
    elif j.narration:
        n = workflow.narration_summary(j)
        total = sum(1 for x in j.narration if x.text)
        st.progress(
            n["ready"] / max(1, total),
            text=f"{n['ready']} of {total} lines spoken"
            + (f" · {n['failed']} failed" if n["failed"] else "")
            + (" · speaking…" if state[1] else ""),
        )
    # Work started or ended: one full rerun, so the lines and the buttons follow.
    if st.session_state.get("voice_state") not in (None, state):
        st.session_state.voice_state = state
        st.rerun()
    st.session_state.voice_state = state


progress()
st.session_state.voice_job = job_id  # tests/apptest.py's settle waits for its narration work
job = studio.get(job_id) or job
if job.narration_error:
    st.warning(ui.plain(job.narration_error), icon=":material/warning:")

if on and job.narration:
    todo = [x.index for x in job.narration if x.text and x.status is not LineStatus.READY]
    if not choice.free and todo:
        usd = studio.narration_estimate(job)
        st.info(
            f"Speaking {len(todo)} line(s) with {choice.model.name} costs about **US${usd:.3f}** "
            "(counted by the app's cost guard).",
            icon=":material/payments:",
        )
    label = "Speak the lines" if todo else "Speak every line again"
    st.button(
        label,
        type="primary",
        icon=":material/record_voice_over:",
        key="speak_lines",
        disabled=busy(),
        on_click=act,
        args=(
            studio.start_speaking,
            job_id,
            None if todo else [x.index for x in job.narration if x.text],
        ),
    )
    rewording = studio.lines_rewriting(job_id)
    for line in job.narration:
        i = line.index
        with st.container(border=True):
            head = f"**Scene {i + 1}** {BADGE[line.status]}"
            if line.reworded:
                head += " :orange-badge[:material/warning: reworded]"
            st.markdown(head)
            # The key follows the text, so a rewrite shows its new wording.
            key = f"line_{i}_{zlib.crc32(line.text.encode())}"
            st.text_input(
                f"Line {i + 1}",
                value=line.text,
                key=key,
                max_chars=400,
                label_visibility="collapsed",
                disabled=line.status is LineStatus.SYNTHESIZING,
                on_change=lambda i=i, key=key: studio.set_line(job_id, i, st.session_state[key]),
            )
            if line.reworded and line.transcript:
                st.caption(f":orange[The voice said: “{ui.plain(line.transcript)}”]")
            if line.status is LineStatus.FAILED:
                st.error(ui.plain(line.error or "Failed."), icon=":material/error:")
            a, b = st.columns([3, 1], vertical_alignment="center")
            if line.status is LineStatus.READY and line.audio_path:
                a.audio(line.audio_path, format="audio/wav")
            if line.status is LineStatus.FAILED:
                b.button(
                    "Retry",
                    key=f"retry_line_{i}",
                    icon=":material/refresh:",
                    on_click=act,
                    args=(studio.retry_line, job_id, i),
                )
            else:
                b.button(
                    "Rewrite",
                    key=f"rewrite_line_{i}",
                    icon=":material/autorenew:",
                    disabled=i in rewording or line.status is LineStatus.SYNTHESIZING,
                    on_click=studio.start_line_rewrite,
                    args=(job_id, i),
                )
elif on:
    st.caption("The lines appear here as soon as they are written.")

# ---------------------------------------------------------------- music
st.subheader("Music")
MUSIC = {
    "builtin": "Built-in ambient bed (made here, royalty free)",
    "none": "No music",
    "upload": "Upload a track",
}
current = (
    "builtin"
    if job.music_path == workflow.MUSIC_BUILTIN
    else "upload"
    if job.music_path
    else "none"
)
pick = st.radio(
    "Music under the voice",
    list(MUSIC),
    format_func=MUSIC.get,
    index=list(MUSIC).index(current),
    key="music_choice",
    horizontal=True,
)
if pick != "upload" and pick != current:
    studio.set_music(job_id, pick)
if pick == "upload":
    up = st.file_uploader(
        "Track (mp3, wav, m4a, ogg; at most 50 MB)",
        type=["mp3", "wav", "m4a", "ogg"],
        key="music_file",
        max_upload_size=50,
    )
    if up is not None and st.session_state.get("music_seen") != up.file_id:
        st.session_state.music_seen = up.file_id
        studio.set_music(
            job_id, "upload", up.name, up.getvalue()
        )  # checked there (type, size, audio)
        job = studio.get(job_id) or job
    if job.music_message:
        st.warning(ui.plain(job.music_message), icon=":material/music_off:")
    elif job.music_name:
        st.success(
            f"Using {ui.plain(job.music_name)}: trimmed or looped to the video, faded, ducked under the voice.",
            icon=":material/music_note:",
        )
st.caption("The mix is normalized for the platforms: −14 LUFS, true peak under −1 dBTP.")
st.page_link(
    ui.GALLERY_PAGE,
    label="Make the video in the gallery",
    query_params={"job": job_id},
    icon=":material/movie:",
)
