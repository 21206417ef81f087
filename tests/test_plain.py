"""``plain``: every stored job document is made by it, so it must give exactly what
``dataclasses.asdict`` gives, for every shape a job can take, and share nothing with the job."""

from __future__ import annotations

import json
from dataclasses import asdict

from hypothesis import given, settings
from hypothesis import strategies as st

from foxpipe.domain.continuity import Verdict
from foxpipe.domain.models import Clip, ClipStatus, ImageVersion, Job, SlotStatus, Video
from foxpipe.domain.narration import NarrationLine, Word
from foxpipe.domain.plain import plain
from tests.imagefakes import make_job

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3)
        | st.tuples(inner, inner)
    ),
    max_leaves=12,
)


def full_job(extra: object = None) -> Job:
    """A job with every nested kind filled: versions with verdicts, rejections, a video with
    clips and a Short, narration lines."""
    job = make_job(20)
    for s in job.slots[:3]:
        s.status = SlotStatus.READY
        s.versions.append(
            ImageVersion(
                url="u",
                local_path="p",
                prompt=s.prompt,
                model="offline",
                path="offline",
                usage={"tokens": 3, "nested": {"list": [1, 2, (3, 4)]}},
                verdict=Verdict(score=91, on_model=True, defects=["outfit"]).to_dict(),
            )
        )
        s.current = 0
        s.rejections.append({"reasons": ["off model"], "note": "ears", "extra": extra})
    job.video = Video(
        provider="kling",
        scenes=[0, 2],
        clips=[Clip(index=0, status=ClipStatus.READY, url="c"), Clip(index=2)],
        short={"lines": [{"start": 0.0, "words": ["a", "b"]}], "extra": extra},
    )
    job.narration = [
        NarrationLine(index=i, text=f"Line {i}", words=[Word("Line", 0.1 * i, 0.1 * i + 0.3)])
        for i in range(20)
    ]
    job.references = {"front": "a.png"}
    job.story.answers["extra"] = extra  # type: ignore[assignment]
    return job


def test_a_full_job_is_exactly_what_asdict_makes():
    job = full_job()
    assert plain(job) == asdict(job)
    assert json.dumps(plain(job), sort_keys=True) == json.dumps(asdict(job), sort_keys=True)
    stored = json.dumps(plain(job), sort_keys=True)
    assert json.dumps(Job.from_dict(json.loads(stored)).to_dict(), sort_keys=True) == stored


@settings(deadline=None)
@given(JSONISH)
def test_any_value_inside_a_job_is_copied_as_asdict_copies_it(extra):
    job = full_job(extra)
    assert plain(job) == asdict(job)
    assert type(plain(job)["story"]["answers"]["extra"]) is type(extra)


def test_the_document_shares_no_container_with_the_job():
    job = full_job(extra={"k": [1, 2]})
    before = asdict(job)
    doc = plain(job)
    doc["slots"][0]["versions"][0]["usage"]["nested"]["list"].append(9)
    doc["slots"][0]["rejections"][0]["extra"]["k"].append(3)
    doc["video"]["short"]["lines"][0]["words"].append("c")
    doc["story"]["scenes"][0]["text"] = "changed"
    doc["references"]["side"] = "b.png"
    assert asdict(job) == before
