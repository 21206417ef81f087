import streamlit as st

from foxpipe import app as workflow
from foxpipe import ui
from foxpipe.domain import quiz

ui.page_start()
settings = ui.settings()
answers: dict[str, str] = st.session_state.answers
errors: dict[str, str] = st.session_state.quiz_errors

st.title("Who is your hero?")
st.caption("A few answers become a 20-scene power-fantasy story. Later questions change with earlier ones.")

for q in quiz.QUESTIONS:
    if not quiz.is_visible(q, answers):  # answers above may have changed the branch
        continue
    key = f"q_{q.key}"
    if q.options:
        current = answers.get(q.key, q.default)
        index = q.options.index(current) if current in q.options else 0
        value = st.selectbox(q.label, q.options, index=index, key=key, help=q.help or None)
    else:
        value = st.text_input(
            q.label, value=answers.get(q.key, q.default), key=key,
            placeholder=q.placeholder, help=f"Up to {q.max_len} characters.",
        )
    answers[q.key] = value
    if q.key in errors:
        st.error(ui.plain(errors[q.key]), icon=":material/error:")

if st.button("Write my story", type="primary", icon=":material/auto_stories:", key="write_story"):
    result = quiz.validate(answers)
    st.session_state.quiz_errors = result.errors
    if not result.ok:
        st.rerun()
    with st.spinner("Writing your 20-scene story…"):
        story = workflow.write_story(settings, result.answers)
    st.session_state.story = story
    st.session_state.job_id = None
    st.switch_page(ui.SCENES_PAGE)

if errors:
    st.error(f"Please fix {len(errors)} answer(s) above.", icon=":material/error:")
