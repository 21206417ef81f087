"""A finished gallery for tests whose subject is not making one.

Making a 20-image gallery (story, prompts, images, thumbnails, a continuity check per image)
costs seconds a test. A test process makes one, the template (``make_template``, through the
``gallery_template`` fixture of tests/conftest.py), on a private engine under the same settings
every test gets; each test that only needs a finished gallery gets a copy of it in its own data
folder (``copy_gallery``, through the ``copy_gallery`` fixture): a new job and story id, its own
copy of every image file, stored through the store as the engine stores a job. A copy is a
gallery reopened after a restart: nothing of it is running, no check, no log row pending.

Tests whose subject is making or approving a gallery (the approval flow, a story made under a
configuration the test is about) make their own.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from foxpipe.domain.models import Job, SlotStatus, new_id
from foxpipe.providers.localstore import LocalStore

SCENES = 20

# A generous bound for the template's 20 images and their checks on a busy 2-core machine.
TEMPLATE_TIMEOUT = 180.0

# Job and slot fields holding a wall-clock time: moved together so the copy was made just now.
_JOB_TIMES = ("created", "started_at", "first_image_at", "finished_at", "deadline")
_SLOT_TIMES = ("started", "finished")


@dataclass(frozen=True)
class Template:
    job: dict[str, Any] = field(repr=False)  # Job.to_dict() of the finished gallery
    folder: Path  # the folder of its images (and thumbnails)
    data: Path  # the template's data folder (no copy may name it)


def _quiet(reg: Any, job_id: str) -> Job | None:
    """The job, once nothing of it is left for the engine: no image in flight, no check (nor
    its log row) running, and every check's verdict stored; else None."""
    job = reg.get(job_id)
    if job is None or not job.done or reg.working():
        return None
    if any(s.image is None or not s.image.verdict for s in job.slots if s.status.has_image):
        return None
    return job


def make_template(folder: Path) -> Template:
    """The default offline story's finished gallery, made on a private engine (not the app's)
    under the tests' settings (``TEST_ENV``) with its data folder in ``folder``."""
    from foxpipe import app
    from foxpipe.config import load_settings
    from foxpipe.domain import quiz, story
    from foxpipe.engine.jobs import JobRegistry
    from tests.conftest import set_test_env

    data = folder / "data"
    with pytest.MonkeyPatch.context() as mp:
        set_test_env(mp, data)  # what every test runs under (clean_env)
        settings = load_settings({})
        reg = JobRegistry(settings)
        try:
            s = story.offline_story(quiz.defaults())
            prepared = app.prepare_prompts(settings, s)
            job_id = reg.create_job(
                s,
                prepared.prompts,
                "template-owner",
                character_sheet=prepared.sheet,
                size=app.image_size(s.answers, settings),
            )
            deadline = time.monotonic() + TEMPLATE_TIMEOUT
            while (job := _quiet(reg, job_id)) is None:
                assert time.monotonic() < deadline, (
                    f"the template gallery was not finished within {TEMPLATE_TIMEOUT:.0f} s"
                )
                time.sleep(0.05)
        finally:
            reg.shutdown()
            reg.store.close()
    statuses = [s.status for s in job.slots]
    assert statuses == [SlotStatus.READY] * SCENES, statuses
    paths = [p for s in job.slots for v in s.versions for p in (v.url, v.local_path, v.thumb_path)]
    images = Path(job.slots[0].image.local_path).parent
    assert all(Path(p).parent == images and Path(p).is_file() for p in paths), paths
    return Template(job=job.to_dict(), folder=images, data=data)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def copy_gallery(
    reg: Any,
    owner: str,
    title: str | None = None,
    approved: bool = False,
    scenes: int = SCENES,
    *,
    template: Template,
) -> str:
    """A finished gallery of ``owner`` in ``reg``'s store (its images in ``reg``'s data folder),
    copied from the template; its job id. ``title`` renames its story; ``scenes`` keeps only the
    story's first scenes; ``approved`` approves every image through the engine."""
    from tests.conftest import TEST_ENV

    differs = {k: (os.environ.get(k), v) for k, v in TEST_ENV.items() if os.environ.get(k) != v}
    assert not differs, f"this test's settings are not the template's (TEST_ENV): {differs}"
    job = Job.from_dict(copy.deepcopy(template.job))  # shares nothing with the template
    old_id, old_story = job.id, job.story.id
    job.id, job.story.id, job.owner = new_id(), new_id(), owner
    if title is not None:
        job.story.title = title
    job.story.scenes, job.slots = job.story.scenes[:scenes], job.slots[:scenes]
    shift = time.time() - job.created  # made just now: every time moves by as much
    for name in _JOB_TIMES:
        if getattr(job, name):
            setattr(job, name, getattr(job, name) + shift)
    folder = LocalStore(reg.settings.data_path).path_for(job.id, 0, 1).parent
    for s in job.slots:
        for name in _SLOT_TIMES:
            if getattr(s, name):
                setattr(s, name, getattr(s, name) + shift)
        for v in s.versions:
            v.created += shift
            for name in ("url", "local_path", "thumb_path"):
                path = Path(getattr(v, name))
                assert path.parent == template.folder, path
                setattr(v, name, str(folder / path.name))
    left = [
        x
        for x in _strings(job.to_dict())
        if str(template.data) in x or old_id in x or old_story in x
    ]
    assert not left, f"the copy still names the template: {left}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template.folder, folder)
    reg.store.add_job(job)
    if approved:
        assert reg.approve_all(job.id) == len(job.slots)
        assert reg.get(job.id).all_approved
    return job.id
