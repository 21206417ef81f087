"""The store's contract, on SQLite and on a real PostgreSQL (``store_url`` runs each test on both)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from foxpipe.config import load_settings
from foxpipe.domain import quiz, story
from foxpipe.domain.lifecycle import SlotEvent, slot_event
from foxpipe.domain.models import ImageVersion, Job, Slot, SlotStatus
from foxpipe.engine.jobs import JobRegistry
from foxpipe.history import past_stories
from foxpipe.store import SCHEMA_VERSION, Store, StoreError, count_jobs

from .conftest import wait_until


def make_job(owner: str = "ann", created: float | None = None, title: str | None = None) -> Job:
    s = story.offline_story(quiz.validate(quiz.defaults()).answers)
    if title is not None:
        s.title = title
    job = Job(
        story=s,
        slots=[Slot(index=i, scene=sc, prompt=sc.text) for i, sc in enumerate(s.scenes)],
        owner=owner,
    )
    if created is not None:
        job.created = created
    return job


def give_image(slot: Slot) -> None:
    slot.versions.append(
        ImageVersion(
            url="u", local_path="/x.png", prompt=slot.prompt, model="offline", path="offline"
        )
    )
    slot.current = len(slot.versions) - 1


# The PostgreSQL cases on one xdist worker (``--dist loadgroup``), so the session's throwaway
# server (tests/pg.py) is started once, not on every worker; the SQLite cases still spread.
ON_POSTGRESQL = pytest.mark.xdist_group("postgresql")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=ON_POSTGRESQL)])
def store_url(store_url: str) -> str:
    """tests/conftest.py's ``store_url`` (same params, passed on to it), with the PostgreSQL
    cases marked ON_POSTGRESQL."""
    return store_url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    yield s
    s.close()


def run_threads(n: int, target) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrapped(k: int) -> None:
        try:
            target(k)
        except BaseException as e:  # collected, so the test fails with it
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


# ------------------------------------------------------------------------------- jobs
def test_a_job_round_trips_through_add_get_and_update(store):
    job = make_job(title="The fox and the moon")
    store.add_job(job)
    got = store.get_job(job.id)
    assert got is not None and got is not job
    assert got.to_dict() == job.to_dict()

    def approve_first(j: Job) -> str:
        slot_event(j.slots[0], SlotEvent.QUEUE)
        slot_event(j.slots[0], SlotEvent.START, run=1)
        give_image(j.slots[0])
        slot_event(j.slots[0], SlotEvent.IMAGE, run=1)
        slot_event(j.slots[0], SlotEvent.APPROVE)
        return "ok"

    out, after = store.update_job(job.id, approve_first)
    assert out == "ok"
    assert after.slots[0].status is SlotStatus.APPROVED
    assert after.revision == job.revision + 1
    again = store.get_job(job.id)
    assert again.slots[0].status is SlotStatus.APPROVED
    assert again.slots[0].image.prompt == job.slots[0].prompt
    assert again.revision == after.revision
    [row] = store.list_jobs()
    assert (row.id, row.owner, row.title, row.approved, row.total, row.done) == (
        job.id,
        "ann",
        "The fox and the moon",
        1,
        20,
        False,
    )


def test_update_job_of_an_unknown_job_is_none_and_a_raising_change_is_not_stored(store):
    assert store.update_job("no-such-job", lambda j: 1) is None
    job = make_job()
    store.add_job(job)

    def broken(j: Job) -> None:
        j.slots[0].prompt = "half-done change"
        raise ValueError("abort")

    with pytest.raises(ValueError):
        store.update_job(job.id, broken)
    assert store.get_job(job.id).slots[0].prompt == job.slots[0].prompt


def test_update_job_loses_no_increment_under_8_threads(store):
    job = make_job()
    store.add_job(job)

    def bump(j: Job) -> None:
        j.slots[0].attempts += 1
        j.slots[1].attempts += 1  # two fields that must move together

    def worker(_k: int) -> None:
        for _ in range(50):
            store.update_job(job.id, bump)

    assert run_threads(8, worker) == []
    final = store.get_job(job.id)
    assert (final.slots[0].attempts, final.slots[1].attempts) == (400, 400)
    assert final.revision == 400


def test_two_stores_on_one_database_lose_no_increment(store_url):
    """Two Store objects stand for two processes (two app replicas, History elsewhere)."""
    a, b = Store(store_url), Store(store_url)
    try:
        job = make_job()
        a.add_job(job)

        def worker(k: int) -> None:
            s = (a, b)[k % 2]
            for _ in range(50):
                s.update_job(
                    job.id, lambda j: setattr(j.slots[0], "attempts", j.slots[0].attempts + 1)
                )

        assert run_threads(8, worker) == []
        assert a.get_job(job.id).slots[0].attempts == 400
        assert b.get_job(job.id).slots[0].attempts == 400
    finally:
        a.close()
        b.close()


def test_two_stores_see_each_others_writes_at_once(store_url):
    a, b = Store(store_url), Store(store_url)
    try:
        job = make_job(owner="bob")
        a.add_job(job)
        assert b.get_job(job.id) is not None
        assert [r.id for r in b.list_jobs(owner="bob")] == [job.id]
        b.update_job(job.id, lambda j: setattr(j.slots[2], "prompt", "written by b"))
        assert a.get_job(job.id).slots[2].prompt == "written by b"
        a.spend_if("images", 3, 0.12, None)
        assert b.spent("images") == (3, pytest.approx(0.12))
        b.record_start("images", time.time())
        assert len(a.recent_starts("images", time.time() - 60)) == 1
        a.delete_job(job.id)
        assert b.get_job(job.id) is None
    finally:
        a.close()
        b.close()


def test_list_jobs_is_newest_first_and_filters_by_owner(store):
    t = time.time()
    older = make_job(owner="ann", created=t - 300, title="older")
    newest = make_job(owner="bob", created=t, title="newest")
    middle = make_job(owner="ann", created=t - 100, title="middle")
    for j in (older, newest, middle):
        store.add_job(j)
    assert [r.title for r in store.list_jobs()] == ["newest", "middle", "older"]
    assert [r.title for r in store.list_jobs(owner="ann")] == ["middle", "older"]
    assert store.list_jobs(owner="nobody") == []
    assert [r.title for r in store.list_jobs(limit=2)] == ["newest", "middle"]
    assert count_jobs(store) == 3


def test_a_corrupt_job_document_still_lists_and_says_so_when_opened(store):
    good, bad = make_job(title="good", created=time.time() - 10), make_job(title="bad")
    store.add_job(good)
    store.add_job(bad)
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE foxpipe_jobs SET data = :d WHERE id = :i"),
            {"d": '{"story": {broken', "i": bad.id},
        )
    assert [r.title for r in store.list_jobs()] == ["bad", "good"]
    with pytest.raises(StoreError) as e:
        store.get_job(bad.id)
    assert "could not be read" in e.value.message
    assert store.get_job(good.id).story.title == "good"
    assert [j.id for j in store.jobs_where()] == [good.id]  # the engine skips it, never crashes
    with pytest.raises(StoreError):
        store.update_job(bad.id, lambda j: None)
    assert store.list_jobs()[0].id == bad.id  # still there, still listed


@pytest.mark.parametrize("bad", [None, 42, "", "../../x", "x" * 500, "nope", "a/b", "é" * 30])
def test_unknown_and_malformed_ids_are_not_found(store, bad):
    store.add_job(make_job())
    assert store.get_job(bad) is None
    assert store.update_job(bad, lambda j: None) is None


# ------------------------------------------------------------------------------- budget
def test_spend_if_counts_and_refuses_beyond_the_limit(store):
    assert store.spent("images") == (0, 0.0)
    assert store.spend_if("images", 4, 0.16, 5) == (True, 0)
    assert store.spend_if("images", 2, 0.08, 5) == (False, 4)
    assert store.spend_if("images", 1, 0.04, 5) == (True, 4)
    assert store.spend_if("images", 1, 0.04, 5) == (False, 5)
    assert store.spent("images") == (5, pytest.approx(0.20))
    assert store.spent("clips") == (0, 0.0)  # kinds are separate
    assert store.spent("images", day="1999-01-01") == (0, 0.0)  # days too
    assert store.spend_if("images", 100, 0.0, None) == (True, 5)  # no limit


def test_spend_if_never_exceeds_its_limit_under_concurrent_spenders(store_url):
    a, b = Store(store_url), Store(store_url)  # two processes' worth, 4 threads each
    granted: list[int] = []
    lock = threading.Lock()
    try:

        def spender(k: int) -> None:
            s = (a, b)[k % 2]
            for _ in range(20):
                ok, _before = s.spend_if("images", 1, 0.04, 50, day="2030-01-01")
                if ok:
                    with lock:
                        granted.append(1)

        assert run_threads(8, spender) == []
        assert a.spent("images", day="2030-01-01")[0] == 50
        assert len(granted) == 50
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------------------- rate window
def test_rate_starts_are_recorded_read_back_and_old_ones_pruned(store):
    now = time.time()
    store.record_start("images", now - 7200)  # two hours ago
    store.record_start("images", now - 30)
    store.record_start("text", now - 20)
    store.record_start("images", now - 10)
    assert store.recent_starts("images", now - 60) == [
        pytest.approx(now - 30),
        pytest.approx(now - 10),
    ]
    assert store.recent_starts("text", now - 60) == [pytest.approx(now - 20)]
    assert store.recent_starts("images", now - 25) == [pytest.approx(now - 10)]
    # the start two hours old was pruned when a newer one was recorded
    assert store.recent_starts("images", 0) == [pytest.approx(now - 30), pytest.approx(now - 10)]


# ------------------------------------------------------------------------------- migrations
V1_DDL = [
    "CREATE TABLE foxpipe_meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE foxpipe_jobs (id VARCHAR(64) PRIMARY KEY, owner VARCHAR(128) NOT NULL,
       story_id VARCHAR(64) NOT NULL, title TEXT NOT NULL, created FLOAT NOT NULL, updated FLOAT NOT NULL,
       revision INTEGER NOT NULL, done BOOLEAN NOT NULL, approved INTEGER NOT NULL, total INTEGER NOT NULL,
       data TEXT NOT NULL)""",
    """CREATE TABLE foxpipe_budget (day VARCHAR(10) NOT NULL, kind VARCHAR(32) NOT NULL, count INTEGER NOT NULL,
       usd FLOAT NOT NULL, PRIMARY KEY (day, kind))""",
]


def test_a_database_at_an_older_schema_version_migrates_and_keeps_its_rows(store_url):
    """A version-1 database, made by hand: its job, its budget and its version row."""
    from sqlalchemy import create_engine

    job = make_job(title="kept across the upgrade")
    job.slots[0].status = SlotStatus.READY
    give_image(job.slots[0])
    old = create_engine(store_url)
    try:
        with old.begin() as conn:
            for ddl in V1_DDL:
                conn.execute(text(ddl))
            conn.execute(text("INSERT INTO foxpipe_meta VALUES ('schema_version', '1')"))
            conn.execute(
                text(
                    "INSERT INTO foxpipe_jobs VALUES (:id, 'ann', :sid, :title, :c, :c, 3, false, 0, 20, :data)"
                ),
                {
                    "id": job.id,
                    "sid": job.story.id,
                    "title": job.story.title,
                    "c": job.created,
                    "data": json.dumps(job.to_dict()),
                },
            )
            conn.execute(
                text("INSERT INTO foxpipe_budget VALUES ('2030-01-01', 'images', 7, 0.28)")
            )
    finally:
        old.dispose()

    s = Store(store_url)
    try:
        assert s.schema_version() == SCHEMA_VERSION
        got = s.get_job(job.id)
        assert got is not None and got.story.title == "kept across the upgrade"
        assert got.slots[0].image is not None
        assert [r.id for r in s.list_jobs()] == [job.id]
        assert s.spent("images", day="2030-01-01") == (7, pytest.approx(0.28))
        s.record_start("images", time.time())  # the table a later version added works
        assert len(s.recent_starts("images", 0)) == 1
    finally:
        s.close()
    again = Store(store_url)  # opening it again changes nothing
    try:
        assert again.schema_version() == SCHEMA_VERSION
        assert again.get_job(job.id).story.title == "kept across the upgrade"
    finally:
        again.close()


def test_two_stores_opening_a_fresh_database_at_once_both_start(store_url):
    stores: list[Store] = []
    lock = threading.Lock()

    def open_one(_k: int) -> None:
        s = Store(store_url)
        with lock:
            stores.append(s)

    try:
        assert run_threads(4, open_one) == []
        assert all(s.schema_version() == SCHEMA_VERSION for s in stores)
    finally:
        for s in stores:
            s.close()


def test_a_fresh_sqlite_file_another_connection_is_writing_opens_once_that_write_ends(tmp_path):
    """The switch to WAL on a fresh file fails at once ("database is locked", SQLite does not
    wait on it) while another connection's write is open: seen once as two stores opening a
    fresh database at the same moment. The store tries again until that write ends."""
    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE held (x INTEGER)")
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    store = Store(f"sqlite:///{path}")
    try:
        assert store.schema_version() == SCHEMA_VERSION
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.close()
        other.close()


# ------------------------------------------------------------------------------- import
def write_job_file(folder: Path, job: Job) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job.id}.json"
    path.write_text(json.dumps(job.to_dict()), encoding="utf-8")
    return path


def test_job_files_are_imported_once_corrupt_ones_skipped_and_none_deleted(store_url, tmp_path):
    folder = tmp_path / "jobs"
    first, second = make_job(title="first"), make_job(title="second")
    files = [write_job_file(folder, first), write_job_file(folder, second)]
    long_id = make_job(title="id too long")
    long_id.id = "x" * 100
    bad = {
        "not-json.json": "{this is not json",
        "a-list.json": "[1, 2, 3]",
        "no-story.json": json.dumps({"id": "abc", "slots": [], "owner": "x"}),
        "bad-status.json": json.dumps(
            {**make_job().to_dict(), "slots": [{**first.to_dict()["slots"][0], "status": "??"}]}
        ),
        "long-id.json": json.dumps(long_id.to_dict()),
        "long-owner.json": json.dumps({**make_job().to_dict(), "owner": "o" * 500}),
        "empty.json": "",
    }
    for name, body in bad.items():
        (folder / name).write_text(body, encoding="utf-8")
    (folder / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    before = sorted(p.name for p in folder.iterdir())

    plain = Store(store_url)  # without a data folder, nothing is imported
    try:
        assert count_jobs(plain) == 0
    finally:
        plain.close()
    s = Store(store_url, data_path=tmp_path)  # the app's start: imports data/jobs
    try:
        titles = sorted(r.title for r in s.list_jobs())
        assert "first" in titles and "second" in titles
        assert s.get_job(first.id).to_dict()["story"] == first.to_dict()["story"]
        assert s.get_job("x" * 100) is None
        # a change made in the store is never overwritten by the old file
        s.update_job(first.id, lambda j: setattr(j.slots[0], "prompt", "changed since"))
        n_rows = count_jobs(s)
        assert s.import_job_files(folder) == 0
        assert count_jobs(s) == n_rows
        assert s.get_job(first.id).slots[0].prompt == "changed since"
    finally:
        s.close()
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing deleted
    assert all(p.exists() for p in files)
    again = Store(store_url, data_path=tmp_path)  # a restart imports nothing twice
    try:
        assert count_jobs(again) == n_rows
        assert again.get_job(first.id).slots[0].prompt == "changed since"
    finally:
        again.close()


# ------------------------------------------------------------------------------- whole flow
def test_a_whole_job_flows_through_the_store_and_survives_a_restart(store_url, monkeypatch):
    monkeypatch.setenv("FOXPIPE_OFFLINE_DELAY", "0.005")
    settings = load_settings({})
    reg = JobRegistry(settings, store=Store(store_url))
    try:
        s = story.offline_story(quiz.validate(quiz.defaults()).answers)
        job_id = reg.create_job(s, [sc.text for sc in s.scenes], owner="carol", size="256x384")
        job = wait_until(lambda: (j := reg.get(job_id)) is not None and j.done and j, timeout=60)
        assert [sl.status for sl in job.slots] == [SlotStatus.READY] * 20
        assert reg.approve_all(job_id) == 20
        [row] = past_stories(reg, owner="carol")
        assert (row["job_id"], row["approved"], row["total"], row["done"]) == (job_id, 20, 20, True)
        assert row["title"] == s.title
        wait_until(lambda: reg.running(job_id) == 0)
    finally:
        reg.shutdown()
        reg.store.close()

    reborn = JobRegistry(settings, store=Store(store_url))
    try:
        again = reborn.get(job_id)
        assert again is not None
        assert [sl.status for sl in again.slots] == [SlotStatus.APPROVED] * 20
        assert all(
            sl.image is not None and Path(sl.image.local_path).is_file() for sl in again.slots
        )
        reborn.recover()  # nothing to resume: the job is finished
        assert [r["approved"] for r in past_stories(reborn)] == [20]
    finally:
        reborn.shutdown()
        reborn.store.close()


def test_a_job_deleted_from_the_store_does_not_come_back_from_its_old_file(store_url, tmp_path):
    folder = tmp_path / "jobs"
    kept, gone = make_job(title="kept"), make_job(title="gone")
    write_job_file(folder, kept)
    write_job_file(folder, gone)
    s = Store(store_url, data_path=tmp_path)
    try:
        assert count_jobs(s) == 2
        s.delete_job(gone.id)
    finally:
        s.close()
    again = Store(store_url, data_path=tmp_path)  # the next start
    try:
        assert again.get_job(gone.id) is None
        assert [r.title for r in again.list_jobs()] == ["kept"]
    finally:
        again.close()
    assert (folder / f"{gone.id}.json").exists()  # the file itself is never deleted


# ------------------------------------------------------------------------------- DATABASE_URL
@ON_POSTGRESQL
def test_postgres_urls_as_hosts_print_them_work(pg_database):
    """Neon prints postgresql://…, Supabase and Heroku postgres://…: both work as they are."""
    for url in (
        pg_database.replace("postgresql+psycopg://", "postgresql://"),
        pg_database.replace("postgresql+psycopg://", "postgres://"),
    ):
        s = Store(
            url + "?sslmode=disable&application_name=foxpipe-test"
        )  # the query string is kept
        try:
            job = make_job(title=url.split(":")[0])
            s.add_job(job)
            assert s.get_job(job.id).story.title == url.split(":")[0]
            with s.engine.connect() as conn:
                assert (
                    conn.execute(text("SELECT current_setting('application_name')")).scalar()
                    == "foxpipe-test"
                )
        finally:
            s.close()


@pytest.mark.parametrize(
    "bad",
    [
        "not a url",
        "mysql://user:secret@127.0.0.1/db",
        "postgresql+psycopg://user:secret@127.0.0.1:1/db",  # nothing listens there
        "sqlite:////proc/no/such/folder/foxpipe.db",
    ],
)
def test_an_unusable_database_url_is_a_clear_store_error(bad):
    with pytest.raises(StoreError) as e:
        Store(bad)
    assert "secret" not in e.value.message
    assert "DATABASE_URL" in e.value.message
