"""One bad file or record renders its own message: a missing or corrupt image does not take
the gallery down, a damaged scene record shows on its tile only, and one damaged saved job
shows on its own History row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from foxpipe import app, ui
from foxpipe.channel import heroes, queue
from foxpipe.config import load_settings
from foxpipe.engine.jobs import JobRegistry
from foxpipe.store import StoreError, jobs
from foxpipe.store import heroes as hero_table
from tests.conftest import APP


def images(at: AppTest) -> int:
    return len(at.get("image"))


OWNER = "reviewer-0001"


@pytest.fixture
def finished_gallery(copy_gallery):
    """The owner's browser on a finished gallery (a copy of the template, tests/prefab.py)."""
    reg = app.engine(load_settings({}))
    job_id = copy_gallery(reg, owner=OWNER)
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["me"] = OWNER
    at.query_params["job"] = job_id
    at.switch_page(ui.GALLERY_PAGE).run()
    assert images(at) == 20 and not at.exception
    return at, reg, job_id


def test_missing_and_corrupt_image_files_only_affect_their_tiles(finished_gallery):
    at, reg, job_id = finished_gallery
    job = reg.get(job_id)
    corrupt = Path(ui.image_src(job.slots[2].image))
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    missing = Path(ui.image_src(job.slots[7].image))
    missing.unlink()
    at.run()
    assert not at.exception
    assert images(at) == 18
    notes = [w.value for w in at.warning if "missing or damaged" in w.value]
    assert len(notes) == 2


def test_a_damaged_scene_record_shows_on_its_own_tile(finished_gallery):
    at, reg, job_id = finished_gallery

    def damage(j):  # what a job file with a wrong type in it turns into
        j.slots[4].image.seconds = "twelve"
        j.slots[4].image.path = "edit"

    reg.mutate(job_id, damage)
    at.run()
    assert not at.exception, at.exception[0].stack_trace
    errors = [e.value for e in at.error]
    assert any("Scene 5 cannot be shown" in e for e in errors)
    assert images(at) == 20  # every tile still shows its image (scene 5's before its broken line)
    assert any("The progress figures cannot be shown" in w.value for w in at.warning)


def test_one_damaged_saved_job_does_not_break_history(clean_env, copy_gallery):
    at = AppTest.from_file(APP, default_timeout=30).run()
    reg = app.current()
    # This reviewer's finished gallery (a copy of the template, tests/prefab.py).
    first = reg.get(copy_gallery(reg, owner=at.session_state.owner))
    # Two more stories of the same reviewer, stored as the app stores them (not generated:
    # what is tested is reading them back).
    ids = [first.id] + [
        reg.create_job(first.story, [s.prompt for s in first.slots], owner=first.owner, start=False)
        for _ in range(2)
    ]
    # Two stored jobs damaged behind the app's back: a wrong type, and text that is not JSON.
    with reg.store.engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == ids[0])
            .values(data=json.dumps({"id": ids[0], "slots": 5}))
        )
        conn.execute(update(jobs).where(jobs.c.id == ids[1]).values(data="{not json"))
    at.switch_page("pages/history.py").run()
    assert not at.exception
    assert len(at.get("page_link")) == 3  # every story still lists, from its summary
    for bad in ids[:2]:  # opening a damaged one says so (not "not found"), and nothing crashes
        gallery = AppTest.from_file(APP, default_timeout=30)
        gallery.query_params["job"] = bad
        gallery.switch_page("pages/gallery.py").run()
        assert not gallery.exception
        assert any("could not be read" in e.value for e in gallery.error)
    good = AppTest.from_file(APP, default_timeout=30)
    good.query_params["job"] = ids[2]
    good.switch_page("pages/gallery.py").run()
    assert not good.exception and not good.error


def test_reading_a_damaged_job_is_not_a_storage_failure():
    """A damaged job is said on its own page; every other page does not warn that changes
    may not be saved (the storage banner is for a store that fails)."""
    reg = JobRegistry(load_settings({}))
    try:
        story = app.write_story(reg.settings, {"hero_name": "Pip"})
        prompts = [s.text for s in story.scenes]
        bad, good = (reg.create_job(story, prompts, owner="t", start=False) for _ in range(2))
        with reg.store.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == bad).values(data="{not json"))
        assert reg.get(bad) is None
        with pytest.raises(StoreError, match="could not be read"):
            reg.load(bad)
        assert reg.problem == ""
        # Work of the damaged job still finishing (its narration being spoken) fails alone.
        with pytest.raises(StoreError, match="could not be read"):
            reg.mutate(bad, lambda j: None)
        assert reg.problem == ""
        assert reg.get(good) is not None and reg.problem == ""
    finally:
        reg.shutdown()
        reg.store.close()


def test_a_damaged_saved_hero_is_named_in_the_library_and_fails_alone():
    """A hero whose stored data cannot be read (not JSON, not an object, or a shape or types no
    version writes) is left out of the library with its name said and can be deleted; it
    raises no storage banner, and a story or queue item asking for it gets a clear message."""
    reg = app.engine(load_settings({}))
    good = heroes.Hero(name="Moss", species="Red Fox", look="a blue scarf")
    reg.store.add_hero(good.id, good.name, good.species, good.data())
    damaged = {
        "Ash": "{not json",
        "Birch": "[1, 2]",
        "Cedar": '{"references": {"base": 5}}',
        "Dune": '{"references": {"base": {"local_path": 5}}}',
        "Elm": '{"sheet": 5, "answers": {"look": 5}}',
    }
    ids = {}
    for name, data in damaged.items():
        h = heroes.Hero(name=name, species="Badger")
        reg.store.add_hero(h.id, h.name, h.species, h.data())
        with reg.store.engine.begin() as conn:
            conn.execute(update(hero_table).where(hero_table.c.id == h.id).values(data=data))
        ids[name] = h.id

    readable, unreadable = heroes.library(reg)
    assert [h.name for h in readable] == ["Moss"] == [h.name for h in heroes.all_heroes(reg)]
    assert sorted(unreadable) == sorted((ids[n], n) for n in damaged)
    for name, hero_id in ids.items():
        assert heroes.get(reg, hero_id) is None, name
        with pytest.raises(queue.QueueError, match="no longer in the library"):
            queue.add(reg, "me", {"hero_name": "Pip"}, hero_id=hero_id)
    assert heroes.get(reg, good.id).name == "Moss"
    assert reg.problem == ""

    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page("pages/library.py").run()
    assert not at.exception and not at.error
    assert [h.value for h in at.main.subheader] == ["Moss (Red Fox)"]
    warnings = [w.value for w in at.main.warning]
    assert len(warnings) == len(damaged)
    assert all(any(f"**{name}**" in w for w in warnings) for name in damaged)
    # A damaged hero can be deleted (with the same confirmation as any other).
    at.checkbox(key=f"sure_{ids['Ash']}").check().run()
    at.button(key=f"delete_{ids['Ash']}").click().run()
    assert reg.store.get_hero(ids["Ash"]) is None
    assert not any("**Ash**" in w.value for w in at.main.warning)
    assert len(at.main.warning) == len(damaged) - 1
    assert reg.problem == ""
