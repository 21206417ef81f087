"""The channel: the hero library (save, reuse without new reference images, export/import),
the queue of stories (budget, restart, files) and review in bulk, through the real pages
(AppTest) and the real SDK against the loopback fake OpenAI server."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from sqlalchemy import create_engine, text
from streamlit.testing.v1 import AppTest

from foxpipe import app
from foxpipe.channel import heroes, review
from foxpipe.channel import queue as story_queue
from foxpipe.config import load_settings
from foxpipe.domain import prompts, quiz
from foxpipe.domain.models import SlotStatus
from foxpipe.store import SCHEMA_VERSION, Store, StoreError, count_jobs, default_url
from tests.apptest import click_approve, click_write, rerun_until, settle_queue
from tests.conftest import APP, wait_until
from tests.fakes.openai_server import png_bytes


@pytest.fixture
def live(monkeypatch, fake_openai):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("IMAGES_PER_MINUTE", "6000")
    # 10 s to answer, as in every app test: a slower answer on a loaded machine would be
    # retried, and the exact request counts below would count it twice.
    monkeypatch.setenv("CHAT_TIMEOUT", "10")
    monkeypatch.setenv("IMAGE_TIMEOUT", "10")
    return fake_openai


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for e in (
            *at.markdown,
            *at.caption,
            *at.title,
            *at.warning,
            *at.error,
            *at.info,
            *at.success,
            *at.subheader,
        )
    ]
    return "\n".join(str(p) for p in parts)


def run_until(at: AppTest, done, timeout: float = 60.0) -> AppTest:
    """Rerun the page until ``done()`` (the engine's state) holds, and once more after it did;
    between reruns wait on that state. Every run is checked for an exception."""
    try:
        return rerun_until(at, done, timeout=timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}: {texts(at)[:500]}") from e


def reference_requests(fake) -> list:
    return [r for r in fake.of("images") if "CHARACTER REFERENCE SHEET" in r.prompt]


REVIEWER = "reviewer-0001"


def offline_gallery(copy_gallery) -> tuple[AppTest, str]:  # noqa: ANN001
    """The owner's browser on a finished offline gallery (a copy of the template,
    tests/prefab.py) in the app's engine."""
    job_id = copy_gallery(app.engine(load_settings({})), owner=REVIEWER)
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["me"] = REVIEWER
    at.query_params["job"] = job_id
    at.switch_page("pages/gallery.py").run()
    assert not at.exception, at.exception
    return at, job_id


# ------------------------------------------------------------------ hero library
def test_story_from_a_saved_hero_sends_no_new_reference_images(live):
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="q_hero_name").set_value("Juniper").run()
    click_write(at)
    click_approve(at)
    assert at.title[0].value == "Hero reference sheet"
    reg = app.current()
    first = reg.get(at.session_state.job_id)
    assert len(reference_requests(live)) == 2
    at.button(key="hero_save_library").click().run()
    assert not at.exception, at.exception
    [saved] = heroes.all_heroes(reg)
    assert saved.name == "Juniper" and set(saved.reference_paths()) == {"base", "powered"}
    assert saved.sheet == first.character_sheet
    at.button(key="hero_approve").click().run()
    run_until(at, lambda: reg.get(first.id).done)

    # Episode 2 with the saved hero, from the Library page.
    before = len(live.of("images"))
    at.switch_page("pages/library.py").run()
    assert "Juniper" in texts(at)
    at.button(key=f"use_{saved.id}").click().run()
    at.switch_page("pages/quiz.py").run()
    assert not at.exception, at.exception
    labels = [w.label for w in (*at.text_input, *at.selectbox)]
    assert "The hero's name" not in labels and "Who is the hero?" not in labels
    assert "Saved hero: **Juniper" in texts(at)
    at.selectbox(key="q_structure").select("Rescue mission").run()
    click_write(at)
    assert at.session_state.story.answers["hero_name"] == "Juniper"
    at.switch_page("pages/scenes.py").run()  # AppTest reruns the page it was last switched to
    click_approve(at)
    job_id = at.session_state.job_id
    assert job_id != first.id
    assert at.title[0].value != "Hero reference sheet"  # straight to the gallery
    at.switch_page("pages/gallery.py")
    run_until(at, lambda: reg.get(job_id).done)
    job = reg.get(job_id)
    new = live.of("images")[before:]
    assert not [r for r in new if "CHARACTER REFERENCE SHEET" in r.prompt]  # no reference paid for
    assert len(new) == 20 and {r.kind for r in new} == {
        "edits"
    }  # every scene drawn from the saved sheet
    assert job.references == {
        k: v for k, v in saved.reference_paths().items() if k == "base"
    } or set(job.references) <= {"base", "powered"}
    assert job.character_sheet == saved.sheet and job.reference_count == 0
    assert all(s.status is SlotStatus.READY for s in job.slots)


def _stored_hero(reg) -> heroes.Hero:
    answers = quiz.validate(
        {**quiz.defaults(), "hero_name": "Moss", "look": "a blue scarf"}
    ).answers
    hero = heroes.Hero(
        name="Moss",
        species="Red Fox",
        look="a blue scarf",
        sheet=prompts.character_sheet(answers),
        answers=heroes.fixed_answers(answers),
    )
    return heroes._save(
        reg, hero, {"base": png_bytes(8, 8, (200, 80, 20)), "powered": png_bytes(8, 8, (9, 9, 200))}
    )


def test_hero_export_import_round_trip_rename_delete():
    reg = app.engine(load_settings({}))
    hero = _stored_hero(reg)
    data = heroes.export_bytes(hero)
    doc = json.loads(data)
    assert doc["format"] == heroes.FILE_FORMAT and set(doc["images"]) == {"base", "powered"}
    copy = heroes.import_bytes(reg, data)
    assert copy.id != hero.id
    assert (copy.name, copy.species, copy.look, copy.sheet, copy.answers) == (
        hero.name,
        hero.species,
        hero.look,
        hero.sheet,
        hero.answers,
    )
    for form in ("base", "powered"):
        with (
            open(copy.reference_paths()[form], "rb") as a,
            open(hero.reference_paths()[form], "rb") as b,
        ):
            assert a.read() == b.read()
    heroes.rename(reg, copy.id, "Moss II")
    assert heroes.get(reg, copy.id).name == "Moss II"
    with pytest.raises(heroes.HeroError, match="letters or numbers"):
        heroes.rename(reg, copy.id, "  !!  ")
    heroes.delete(reg, copy.id)
    assert heroes.get(reg, copy.id) is None and heroes.get(reg, hero.id) is not None
    with pytest.raises(heroes.HeroError, match="no longer"):
        heroes.delete(reg, copy.id)


def _good_doc() -> dict:
    return {
        "format": heroes.FILE_FORMAT,
        "name": "Moss",
        "species": "Red Fox",
        "look": "",
        "sheet": "A fox.",
        "answers": {"hero_name": "Moss", "animal": "Red Fox"},
        "images": {"base": base64.b64encode(png_bytes(4, 4, (1, 2, 3))).decode()},
    }


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: b"not json at all", "not JSON"),
        (lambda d: {**d, "format": "something/2"}, "not a foxpipe hero file"),
        (
            lambda d: {**d, "answers": {"hero_name": "Moss", "setting": "A city"}},
            "cannot fix: setting",
        ),
        (lambda d: {**d, "answers": {"animal": "Dragon"}}, "not one of the choices"),
        (lambda d: {**d, "answers": {"hero_name": "x" * 80}}, "too long"),
        (lambda d: {**d, "images": {"base": "%%%"}}, "not valid base64"),
        (
            lambda d: {**d, "images": {"base": base64.b64encode(b"GIF89a....").decode()}},
            "not a PNG, JPEG or WebP",
        ),
        (lambda d: {**d, "images": {"side": d["images"]["base"]}}, "unknown image"),
        (lambda d: {**d, "name": "", "answers": {}}, "letters or numbers"),
        (lambda d: b"{" + b" " * (heroes.MAX_FILE_BYTES + 1) + b"}", "too large"),
    ],
)
def test_bad_hero_files_get_clear_messages_and_store_nothing(change, message):
    reg = app.engine(load_settings({}))
    out = change(_good_doc())
    raw = out if isinstance(out, bytes) else json.dumps(out).encode()
    with pytest.raises(heroes.HeroError, match=message):
        heroes.import_bytes(reg, raw)
    assert heroes.all_heroes(reg) == []
    heroes.import_bytes(reg, json.dumps(_good_doc()).encode())  # the good file goes in
    assert len(heroes.all_heroes(reg)) == 1


def test_library_page_renames_and_deletes_with_confirmation():
    at = AppTest.from_file(APP, default_timeout=30).run()
    reg = app.current()
    hero = _stored_hero(reg)
    at.switch_page("pages/library.py").run()
    assert "Moss (Red Fox)" in texts(at)
    at.text_input(key=f"name_{hero.id}").set_value("Mossy").run()
    at.button(key=f"rename_{hero.id}").click().run()
    assert heroes.get(reg, hero.id).name == "Mossy"
    at.button(key=f"delete_{hero.id}").click().run()  # not confirmed: kept
    assert heroes.get(reg, hero.id) is not None and "Yes, delete this hero" in texts(at)
    at.checkbox(key=f"sure_{hero.id}").check().run()
    at.button(key=f"delete_{hero.id}").click().run()
    assert heroes.get(reg, hero.id) is None and not at.exception


# ------------------------------------------------------------------ store migration
def test_migration_to_schema_3_keeps_old_rows(clean_env):
    url = default_url(clean_env)
    store = Store(url)
    from foxpipe.domain.models import Job, Scene, Slot, Story

    story = Story("Old", [Scene(1, "b", "t")], {"hero_name": "Old"})
    job = Job(story=story, slots=[Slot(0, story.scenes[0], "p")], owner="o")
    store.add_job(job)
    store.close()
    eng = create_engine(url)  # make it look like a version-2 database
    with eng.begin() as conn:
        conn.execute(text("DROP TABLE foxpipe_heroes"))
        conn.execute(text("DROP TABLE foxpipe_queue"))
        conn.execute(text("UPDATE foxpipe_meta SET value='2' WHERE key='schema_version'"))
    eng.dispose()
    store = Store(url)
    assert store.schema_version() == SCHEMA_VERSION == 3
    assert count_jobs(store) == 1 and store.get_job(job.id).story.title == "Old"
    store.add_hero("h1", "Moss", "Fox", {"sheet": "s"})
    store.add_queue_item("q1", "o", "waiting", {"answers": {}})
    assert store.get_hero("h1")["name"] == "Moss" and store.queue_items()[0]["id"] == "q1"
    store.close()


# ------------------------------------------------------------------ the queue
def test_queue_of_three_finishes_within_the_budget_and_the_fourth_stops(live, monkeypatch):
    monkeypatch.setenv("DAILY_IMAGE_BUDGET", "80")  # 3 stories x (20 + 2 references) = 66
    at = AppTest.from_file(APP, default_timeout=30).run()
    reg = app.current()
    story_queue.pause(reg)  # queue all four, then start
    for name in ("Ada", "Bo", "Cy", "Dee"):
        at.text_input(key="q_hero_name").set_value(name).run()
        at.button(key="enqueue_story").click().run()
        assert "Queued: " + name in texts(at)
    at.switch_page("pages/queue.py").run()
    assert texts(at).count("~22 images") == 4 and "Paused" in texts(at)
    at.button(key="queue_resume").click().run()
    settle_queue(at)
    items = story_queue.items(reg)
    assert [i.state for i in items] == ["ready"] * 3 + ["waiting"]
    assert "Stopped before overspending" in items[3].note and story_queue.paused(reg)
    assert reg.images_today() == 66 <= 80 and len(live.of("images")) == 66
    assert len(reference_requests(live)) == 6
    page = texts(at)
    assert page.count("ready for review") == 3 and "Stopped before overspending" in page
    assert len([e for e in at.get("page_link") if "Open its gallery" in str(e.proto)]) == 3
    for it in items[:3]:
        job = reg.get(it.job_id)
        assert job.story.answers["hero_name"] in ("Ada", "Bo", "Cy")
        assert all(s.status is SlotStatus.READY for s in job.slots)
    # Ready one after another: story 2 was not ready before story 1.
    assert items[0].ready_at <= items[1].ready_at <= items[2].ready_at


def test_queue_with_a_saved_hero_pays_no_references(live):
    reg = app.engine(load_settings({}))
    hero = _stored_hero(reg)
    item = story_queue.add(reg, "me", {"structure": "Survival journey"}, hero_id=hero.id)
    assert item.images == 20 and item.answers["hero_name"] == "Moss"
    wait_until(lambda: story_queue.items(reg)[0].state == "ready", timeout=90)
    job = reg.get(story_queue.items(reg)[0].job_id)
    assert not reference_requests(live) and len(live.of("images")) == 20
    assert job.character_sheet == hero.sheet and set(job.references) == {"base"}


def test_queue_survives_an_engine_restart():
    settings = load_settings({})
    reg = app.engine(settings)
    story_queue.pause(reg)
    for name in ("Ada", "Bo", "Cy"):
        story_queue.add(reg, "me", {**quiz.defaults(), "hero_name": name})
    first = story_queue.items(reg)[0]
    reg.store.update_queue_item(
        first.id, story_queue.WRITING
    )  # cut off while its story was written
    reg.store.set_meta(story_queue.PAUSE_KEY, "")
    app.shutdown(grace=0)  # the app stops before the runner starts
    reg = app.engine(
        settings
    )  # a new process's engine: the app's first page run picks the queue up
    story_queue.recover(reg)
    wait_until(lambda: all(i.state == "ready" for i in story_queue.items(reg)), timeout=60)
    items = story_queue.items(reg)
    assert [i.answers["hero_name"] for i in items] == ["Ada", "Bo", "Cy"]
    assert "restart" in items[0].note and len({i.job_id for i in items}) == 3
    wait_until(
        lambda: all(reg.get(i.job_id).done for i in items), timeout=60
    )  # images and their checks


def test_a_queued_story_whose_gallery_cannot_be_read_says_so_and_a_failing_store_is_waited_out(
    monkeypatch,
):
    """The queue watches each story until its images are made. A gallery whose saved data
    cannot be read ends its item with that message (not "removed"); a store that fails for a
    moment is looked at again (the item is not failed); items saved damaged still list and
    are never written."""
    reg = app.engine(load_settings({}))
    s = app.write_story(reg.settings, {"hero_name": "Pip"})
    damaged, slow = (
        reg.create_job(s, [sc.text for sc in s.scenes], owner="me", start=False) for _ in range(2)
    )
    for item, job_id in (("q-damaged", damaged), ("q-slow", slow)):
        reg.store.add_queue_item(item, "me", story_queue.IMAGES, {"job_id": job_id})
    with reg.store.engine.begin() as conn:
        conn.execute(
            text("UPDATE foxpipe_jobs SET data = '{not json' WHERE id = :i"), {"i": damaged}
        )
    # Its mark fails once too (the store fails for a moment): it is made again, not dropped.
    mark = story_queue._mark
    marks: list[str | None] = []

    def mark_failing_once(registry, item_id, state=None, **data):  # noqa: ANN001, ANN202
        marks.append(state)
        if len(marks) == 1:
            raise StoreError("The store could not be written or read (OperationalError).")
        return mark(registry, item_id, state, **data)

    monkeypatch.setattr(story_queue, "_mark", mark_failing_once)
    monkeypatch.setattr(story_queue, "_poll", lambda _reg, _share: 0.01)  # look again at once
    asyncio.run(asyncio.wait_for(story_queue._watch(reg, "q-damaged", damaged), 30))
    item = next(i for i in story_queue.items(reg) if i.id == "q-damaged")
    assert item.state == story_queue.FAILED and "could not be read" in item.note
    assert marks == [story_queue.FAILED, story_queue.FAILED]
    monkeypatch.setattr(story_queue, "_mark", mark)

    def made(j):  # noqa: ANN001, ANN202
        for slot in j.slots:
            slot.status = SlotStatus.READY

    reg.mutate(slow, made)
    failures: list[str] = []
    load = reg.load

    def failing_twice(job_id: str):  # noqa: ANN202
        if len(failures) < 2:
            failures.append(job_id)
            raise StoreError("The store could not be written or read (OperationalError).")
        return load(job_id)

    monkeypatch.setattr(reg, "load", failing_twice)
    asyncio.run(asyncio.wait_for(story_queue._watch(reg, "q-slow", slow), 30))
    item = next(i for i in story_queue.items(reg) if i.id == "q-slow")
    assert failures == [slow, slow] and item.state == story_queue.READY, item

    # Waiting rows damaged outside the app: listed with a note, and the runner fails them
    # without writing (or paying for) a story nobody asked for.
    damaged_rows = {"q-list": "[1, 2]", "q-text": "{not json", "q-answers": '{"answers": 5}'}
    for item_id, data in damaged_rows.items():
        reg.store.add_queue_item(item_id, "me", story_queue.WAITING, {})
        with reg.store.engine.begin() as conn:
            conn.execute(
                text("UPDATE foxpipe_queue SET data = :d WHERE id = :i"), {"d": data, "i": item_id}
            )
    listed = {i.id: i for i in story_queue.items(reg)}
    assert all(listed[i].damaged for i in damaged_rows)
    assert all("could not be read" in listed[i].note for i in ("q-list", "q-text"))
    jobs_before = count_jobs(reg.store)
    asyncio.run(asyncio.wait_for(story_queue._run(reg), 30))
    listed = {i.id: i for i in story_queue.items(reg)}
    for item_id in damaged_rows:
        assert listed[item_id].state == story_queue.FAILED, listed[item_id]
        assert "add the story again" in listed[item_id].note
    assert count_jobs(reg.store) == jobs_before


def test_queue_files_are_checked_row_by_row():
    reg = app.engine(load_settings({}))
    story_queue.pause(reg)
    bad = json.dumps(
        [{"hero_name": "Ok"}, {"hero_name": "!!!"}, {"animal": "Dragon"}, "x"]
    ).encode()
    with pytest.raises(story_queue.QueueError) as e:
        story_queue.add_file(reg, "me", bad, "a.json")
    msg = str(e.value)
    assert (
        "Story 2: “The hero's name” needs some letters" in msg
        and "Story 3:" in msg
        and "not one of the choices" in msg
    )
    assert "Story 4: not an object" in msg and "Story 1" not in msg
    assert story_queue.items(reg) == []  # nothing from a bad file
    csv_data = b"hero_name,structure\nAda,Rescue mission\nBo,\n"
    added = story_queue.add_file(reg, "me", csv_data, "b.csv")
    assert [(i.answers["hero_name"], i.answers["structure"]) for i in added] == [
        ("Ada", "Rescue mission"),
        ("Bo", "Power fantasy"),
    ]
    for raw, words in (
        (b"\xff\xfe", "UTF-8"),
        (b"[", "could not be read"),
        (b"[]", "no stories"),
        (b'{"a": 1}', "Story 1: unknown question"),
    ):
        with pytest.raises(story_queue.QueueError, match=words):
            story_queue.add_file(reg, "me", raw, "c.json")


# ------------------------------------------------------------------ review in bulk
def test_bulk_approve_reject_regenerate_and_compact_review(copy_gallery):
    at, job_id = offline_gallery(copy_gallery)
    reg = app.current()
    for i in (0, 1, 2):
        at.checkbox(key=f"sel_{job_id}_{i}").check()
    at.button(key="bulk_approve").click().run()
    job = reg.get(job_id)
    assert [s.status for s in job.slots[:4]] == [SlotStatus.APPROVED] * 3 + [SlotStatus.READY]
    assert "Approved 3 image(s)." in texts(at)
    for i in (3, 4):
        at.checkbox(key=f"sel_{job_id}_{i}").check()
    at.selectbox(key="bulk_reason").select("Hero looks different")
    at.text_input(key="bulk_note").input("keep the scarf")
    at.button(key="bulk_reject").click().run()
    run_until(at, lambda: reg.get(job_id).done)
    job = reg.get(job_id)
    for i in (3, 4):
        assert job.slots[i].generations == 2 and len(job.slots[i].versions) == 2
        assert "keep the scarf" in job.slots[i].feedback
    assert job.slots[5].generations == 1
    at.checkbox(key=f"sel_{job_id}_5").check()
    at.button(key="bulk_regenerate").click().run()
    run_until(at, lambda: reg.get(job_id).done and len(reg.get(job_id).slots[5].versions) == 2)
    assert reg.get(job_id).slots[5].feedback == ""
    at.button(key="bulk_approve").click().run()  # nothing selected: says so
    assert "Select images first" in texts(at)
    # Compact review: one image beside its scene text; approve moves on to the next ready one.
    at.toggle(key="bulk_compact").set_value(True).run()
    job = reg.get(job_id)
    assert job.slots[3].scene.text in texts(at) or any(
        job.slots[i].scene.text in texts(at) for i in range(20)
    )
    at.session_state["compact_at"] = 6
    at.run()
    assert "**Scene 7 of 20**" in texts(at)
    at.button(key="compact_approve").click().run()
    assert reg.get(job_id).slots[6].status is SlotStatus.APPROVED
    assert at.session_state["compact_at"] == 7
    at.button(key="compact_next").click().run()
    assert at.session_state["compact_at"] == 8
    # A teammate shows an earlier version of scene 9 while the reviewer looks at the newer one:
    # the reviewer's Approve does not approve what they did not see, and says so.
    reg.mutate(job_id, lambda j: j.slots[8].versions.append(j.slots[8].versions[0]))
    reg.restore_version(job_id, 8, 1)
    at.button(key="compact_approve").click().run()
    assert reg.get(job_id).slots[8].status is SlotStatus.READY
    assert "Scene 9 was not approved" in texts(at)
    assert at.session_state["compact_at"] == 8
    # A teammate approves the very image the reviewer is looking at: the reviewer's Approve is
    # told so (not "it changed") and moves on.
    at.run()  # the reviewer now sees scene 9's restored version
    reg.approve(job_id, [8])
    at.button(key="compact_approve").click().run()
    assert "Scene 9 was already approved by a teammate." in texts(at)
    assert "was not approved" not in texts(at)
    assert at.session_state["compact_at"] != 8
    assert not at.exception


def test_on_model_reads_verdicts_defensively(copy_gallery):
    reg = app.engine(load_settings({}))
    job = reg.get(copy_gallery(reg, owner=REVIEWER))  # a finished gallery (tests/prefab.py)
    for s in job.slots:  # as a job stored before continuity checks existed
        s.image.verdict = {}
    assert review.on_model(job) == []  # no verdicts stored: nothing is approved blindly
    job.slots[0].image.verdict = {"on_model": True, "score": 95, "status": "checked"}
    job.slots[1].image.verdict = {"on_model": False, "score": 20, "status": "checked"}
    job.slots[2].image.verdict = {"on_model": True, "status": "not_checked"}
    job.slots[3].image.verdict = "garbage"

    class V:
        def to_dict(self):
            return {"on_model": True, "status": "checked"}

    job.slots[4].image.verdict = V()
    assert review.on_model(job) == [0, 4]
