"""The engine asks providers what they can do (declared capabilities), never for their names:
a paid provider called "offline" is still counted by the cost guard, a free one named like an
OpenAI model is not, and the hero sheet is only offered to a model that takes references."""

from __future__ import annotations

from foxpipe.config import Settings
from foxpipe.engine import hero
from foxpipe.engine.generation import Pipeline
from foxpipe.engine.jobs import JobRegistry
from foxpipe.engine.ratelimit import RateLimiter
from foxpipe.providers.base import Capability, can, capabilities
from foxpipe.providers.cloudinary import CloudinaryStore
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.localstore import LocalStore
from foxpipe.providers.offline import OfflineImages
from tests.conftest import wait_until
from tests.imagefakes import HANG, ScriptedImages, make_story


def engine_with(images, tmp_path, **kw) -> JobRegistry:
    settings = Settings(data_dir=str(tmp_path / "data"), continuity="off", **kw)  # images only

    def factory(s: Settings, lim: RateLimiter) -> Pipeline:
        return Pipeline(
            images=images,
            store=LocalStore(s.data_path),
            log=CsvLog(s.data_path),
            limiter=lim,
            settings=s,
            backoff_base=0.01,
            backoff_cap=0.05,
        )

    return JobRegistry(settings, factory, limiter=RateLimiter(1000, 10, period=60.0))


def run_job(reg: JobRegistry) -> None:
    story = make_story(3)
    job_id = reg.create_job(story, [s.text for s in story.scenes], owner="t")
    wait_until(lambda: reg.get(job_id).done)


def test_a_paid_provider_is_counted_whatever_its_name(tmp_path):
    images = ScriptedImages(latency=0.0)
    images.name = "offline"  # the name of the free renderer, but it declares nothing free
    reg = engine_with(images, tmp_path)
    try:
        run_job(reg)
        assert reg.images_today() == 3
    finally:
        reg.shutdown()


def test_a_free_provider_is_never_counted_whatever_its_name(tmp_path):
    images = ScriptedImages(latency=0.0)
    images.name = "gpt-image-2"
    images.capabilities = frozenset({Capability.FREE})
    reg = engine_with(images, tmp_path)
    try:
        run_job(reg)
        assert reg.images_today() == 0
    finally:
        reg.shutdown()


def test_the_hero_sheet_needs_a_model_that_takes_references(tmp_path):
    images = ScriptedImages(latency=0.0)
    reg = engine_with(images, tmp_path, openai_api_key="sk-test-capabilities")
    try:
        assert not hero.wanted(reg.settings, reg)
        images.capabilities = frozenset({Capability.REFERENCES})
        assert hero.wanted(reg.settings, reg)
    finally:
        reg.shutdown()


def test_declared_capabilities_of_the_built_in_providers(tmp_path):
    assert capabilities(OfflineImages()) == {Capability.FREE}
    assert capabilities(LocalStore(tmp_path)) == frozenset()
    cloud = CloudinaryStore("cloudinary://key:secret@cloud", tmp_path)
    assert can(cloud, Capability.HOSTS_MEDIA) and can(cloud, Capability.REUPLOAD)


def test_drawing_a_reference_that_is_being_drawn_counts_nothing(tmp_path, monkeypatch):
    """A second "Draw" of the same reference (a double click, a teammate) is refused before
    anything is counted against the budget."""
    images = ScriptedImages(latency=0.0, default=HANG)  # the first drawing is still going
    images.capabilities = frozenset({Capability.REFERENCES})
    reg = engine_with(images, tmp_path, openai_api_key="sk-test-capabilities")
    try:
        story = make_story(3)
        job_id = reg.create_job(story, [s.text for s in story.scenes], owner="t", start=False)
        assert hero.start_reference(reg, job_id, "base") == ""
        wait_until(lambda: images.in_flight() == 1)
        assert hero.start_reference(reg, job_id, "base") == "It is being drawn already."
        assert reg.images_today() == 1 and images.in_flight() == 1
        # Two Draws at the same moment both pass that check: the one refused by the worker
        # gives back what it counted.
        monkeypatch.setattr(hero, "drawing", lambda *a: False)
        assert hero.start_reference(reg, job_id, "base") == "It is being drawn already."
        assert reg.images_today() == 1 and images.in_flight() == 1
    finally:
        reg.shutdown()
