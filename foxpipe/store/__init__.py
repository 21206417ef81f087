"""The store: the only reader and writer of jobs, the daily budget and the rate window's recent
starts. SQLAlchemy 2 on a SQLite file in the data folder by default, or PostgreSQL through
``DATABASE_URL`` (for Streamlit Community Cloud, whose disk is wiped on every restart).

A job is one row: a few columns History and the engine query on (owner, story, title,
counts, whether it is done) and the whole job as a JSON document. Every change is one
transaction (``update_job``): read, change, write, commit, under a row lock on PostgreSQL
and SQLite's single writer, so two threads or two processes never lose each other's change.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from foxpipe.domain.models import Job, SlotStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 3
IMPORTED_KEY = "job_files_imported"  # foxpipe_meta: the job files folder was imported
MIGRATION_LOCK = 0x666F787069706501  # PostgreSQL advisory lock held while migrating

metadata = MetaData()

meta = Table(
    "foxpipe_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

jobs = Table(
    "foxpipe_jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False, index=True),
    Column("story_id", String(64), nullable=False, index=True),
    Column("title", Text, nullable=False, default=""),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("revision", Integer, nullable=False, default=0),
    Column("done", Boolean, nullable=False, default=False, index=True),
    Column("approved", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=False, default=0),
    Column("data", Text, nullable=False),
)

budget = Table(
    "foxpipe_budget",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("kind", String(32), primary_key=True),  # images, clips, narration, checks
    Column("count", Integer, nullable=False, default=0),
    Column("usd", Float, nullable=False, default=0.0),
)

rate_starts = Table(
    "foxpipe_rate_starts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bucket", String(32), nullable=False, index=True),
    Column("t", Float, nullable=False, index=True),
)


# ---- the channel: saved heroes and the queue of stories (schema version 3)
heroes = Table(
    "foxpipe_heroes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("species", String(120), nullable=False, default=""),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("data", Text, nullable=False),  # look, character sheet, fixed answers, references
)

story_queue = Table(
    "foxpipe_queue",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False, index=True),
    Column("created", Float, nullable=False, index=True),
    Column("updated", Float, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("data", Text, nullable=False),  # answers, hero id, job id, estimate, note
)


class StoreError(Exception):
    """The store could not be read or written; ``message`` is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class DamagedRecord(StoreError):
    """One stored job's document cannot be read; the store itself works (its page says so,
    nothing else is affected)."""


@dataclass
class JobSummary:
    """One History row."""

    id: str
    owner: str
    story_id: str
    title: str
    created: float
    updated: float
    done: bool
    approved: int
    total: int
    problem: str = ""  # the stored job could not be read


def _summary_columns(job: Job) -> dict[str, Any]:
    return {
        "owner": job.owner,
        "story_id": job.story.id,
        "title": job.story.title,
        "created": job.created,
        "updated": time.time(),
        "revision": job.revision,
        "done": job.done,
        "approved": sum(1 for s in job.slots if s.status is SlotStatus.APPROVED),
        "total": len(job.slots),
        "data": json.dumps(job.to_dict(), ensure_ascii=False),
    }


def default_url(data_path: Path) -> str:
    return f"sqlite:///{(data_path / 'foxpipe.db').as_posix()}"


def describe(url: str) -> str:
    """The store's URL without its password, for the sidebar and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(an address that is not a database URL)"


def normalize_url(url: str) -> str:
    """Hosted PostgreSQL services print ``postgres://`` or ``postgresql://`` addresses: use
    them as they are, with the psycopg (v3) driver foxpipe ships with."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Store:
    def __init__(self, url: str, *, data_path: Path | None = None):
        url = normalize_url(url)
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._lock = threading.RLock()  # one writer per process (SQLite has one anyway)
        try:
            self._open(url)
            self.migrate()
        except (StoreError, SQLAlchemyError, ImportError, OSError, ValueError) as e:
            log.warning("[STORE] %s could not be opened (%s)", describe(url), type(e).__name__)
            raise StoreError(
                f"The database {describe(url)} could not be opened ({type(e).__name__}). Check DATABASE_URL: "
                "empty for a SQLite file in the data folder, or postgresql+psycopg://user:password@host/db."
            ) from e
        if data_path is not None:
            self.import_job_files(data_path / "jobs")

    def _open(self, url: str) -> None:
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # No pool_pre_ping: a SQLite file has no server connection to go stale, and the
            # ping would cost a SELECT on every checkout (PostgreSQL keeps it, below).
            self.engine: Engine = create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False}
            )

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # The driver's own transaction handling begins only at the first write, so
                # a read-then-write (update_job, spend_if) of two processes could interleave
                # and lose one's change: transactions are begun explicitly in ``_tx``.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA busy_timeout=30000")
                _wal(cur)
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()
        else:
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=5,
                pool_timeout=30,
                connect_args={"connect_timeout": 10},
            )

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        """One transaction. On SQLite a ``write`` one takes the database's write lock at
        its start (BEGIN IMMEDIATE), so what it reads cannot change before it writes, even
        from another process; PostgreSQL locks the rows it reads for update instead."""
        try:
            with self._lock, self.engine.begin() as conn:
                if self.is_sqlite:
                    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
        except SQLAlchemyError as e:
            log.warning("[STORE] %s", type(e).__name__)
            raise StoreError(f"The store could not be written or read ({type(e).__name__}).") from e

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION, keeping every row already stored."""
        with self._tx(write=True) as conn:
            if self.engine.dialect.name == "postgresql":
                # Two processes starting on a fresh database would both create the tables
                # (one fails on the catalog); the first migrates, the other waits, then
                # finds the work done. (SQLite: BEGIN IMMEDIATE already serialises this.)
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            metadata.create_all(conn, checkfirst=True)
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
            version = int(row[0]) if row else 0
            for target, step in MIGRATIONS:
                if version < target:
                    step(conn)
                    version = target
            conn.execute(delete(meta).where(meta.c.key == "schema_version"))
            conn.execute(insert(meta).values(key="schema_version", value=str(version)))

    def schema_version(self) -> int:
        with self._tx() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
            return int(row[0]) if row else 0

    # ------------------------------------------------------------------ settings learned at run time
    def get_value(self, key: str) -> str | None:
        """A small value the app learned and keeps across restarts (e.g. the account's rate)."""
        with self._tx() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == key)).first()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute(delete(meta).where(meta.c.key == key))
            conn.execute(insert(meta).values(key=key, value=value))

    # ------------------------------------------------------------------ jobs
    def add_job(self, job: Job) -> None:
        with self._tx(write=True) as conn:
            conn.execute(insert(jobs).values(id=job.id, **_summary_columns(job)))

    def get_job(self, job_id: str) -> Job | None:
        """The job as stored now, or None (unknown id). Raises StoreError for an unreadable row."""
        if not _valid_id(job_id):
            return None
        with self._tx() as conn:
            row = conn.execute(select(jobs.c.data).where(jobs.c.id == job_id)).first()
        if row is None:
            return None
        return _decode(job_id, row[0])

    def update_job(self, job_id: str, fn: Callable[[Job], T]) -> tuple[T, Job] | None:
        """Apply ``fn`` to the job in one transaction and store the result; (what ``fn``
        returned, the job after it). None for an unknown job. ``fn`` may raise to abort."""
        if not _valid_id(job_id):
            return None
        with self._tx(write=True) as conn:
            q = select(jobs.c.data).where(jobs.c.id == job_id)
            if not self.is_sqlite:
                q = q.with_for_update()
            row = conn.execute(q).first()
            if row is None:
                return None
            job = _decode(job_id, row[0])
            out = fn(job)
            job.revision += 1
            if job.done and not job.finished_at:
                job.finished_at = time.time()
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**_summary_columns(job)))
            return out, job

    def jobs_where(self, *, done: bool | None = None, story_id: str | None = None) -> list[Job]:
        q = select(jobs.c.id, jobs.c.data)
        if done is not None:
            q = q.where(jobs.c.done == done)
        if story_id is not None:
            q = q.where(jobs.c.story_id == story_id)
        with self._tx() as conn:
            rows = conn.execute(q).all()
        out = []
        for jid, data in rows:
            try:
                out.append(_decode(jid, data))
            except StoreError:
                continue
        return out

    def list_jobs(self, owner: str | None = None, limit: int = 100) -> list[JobSummary]:
        """History: newest first, from the summary columns (a broken document still lists)."""
        q = (
            select(
                jobs.c.id,
                jobs.c.owner,
                jobs.c.story_id,
                jobs.c.title,
                jobs.c.created,
                jobs.c.updated,
                jobs.c.done,
                jobs.c.approved,
                jobs.c.total,
            )
            .order_by(jobs.c.created.desc())
            .limit(limit)
        )
        if owner is not None:
            q = q.where(jobs.c.owner == owner)
        with self._tx() as conn:
            return [JobSummary(*r) for r in conn.execute(q).all()]

    def delete_job(self, job_id: str) -> None:
        if not _valid_id(job_id):
            return
        with self._tx(write=True) as conn:
            conn.execute(delete(jobs).where(jobs.c.id == job_id))

    # ------------------------------------------------------------------ budget
    def spent(self, kind: str, day: str | None = None) -> tuple[int, float]:
        day = day or date.today().isoformat()
        with self._tx() as conn:
            row = conn.execute(
                select(budget.c.count, budget.c.usd).where(
                    budget.c.day == day, budget.c.kind == kind
                )
            ).first()
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    def spend_if(
        self, kind: str, n: int, usd: float, limit: int | None, day: str | None = None
    ) -> tuple[bool, int]:
        """Add ``n`` (and ``usd``) to today's count of ``kind`` if it stays within ``limit``
        (None: no limit), in one transaction; (whether it was added, the count before)."""
        day = day or date.today().isoformat()
        with self._tx(write=True) as conn:
            # The day's row first (a no-op when it exists), then lock it: two first spends
            # of a day no longer both insert it (one failed on PostgreSQL's primary key).
            conn.execute(self._insert_missing(budget, day=day, kind=kind, count=0, usd=0.0))
            q = select(budget.c.count).where(budget.c.day == day, budget.c.kind == kind)
            if not self.is_sqlite:
                q = q.with_for_update()
            row = conn.execute(q).first()
            before = int(row[0]) if row else 0
            if limit is not None and before + n > limit:
                return False, before
            conn.execute(
                update(budget)
                .where(budget.c.day == day, budget.c.kind == kind)
                .values(count=budget.c.count + n, usd=budget.c.usd + usd)
            )
            return True, before

    def _insert_missing(self, table: Table, **values: Any) -> Any:
        """INSERT that does nothing when the primary key already exists."""
        if self.is_sqlite:
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table).values(**values).on_conflict_do_nothing()
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).values(**values).on_conflict_do_nothing()

    # ------------------------------------------------------------------ rate window
    def record_start(self, bucket: str, t: float) -> None:
        with self._tx(write=True) as conn:
            conn.execute(insert(rate_starts).values(bucket=bucket, t=t))
            conn.execute(delete(rate_starts).where(rate_starts.c.t < t - 3600))

    def recent_starts(self, bucket: str, since: float) -> list[float]:
        with self._tx() as conn:
            rows = conn.execute(
                select(rate_starts.c.t)
                .where(rate_starts.c.bucket == bucket, rate_starts.c.t >= since)
                .order_by(rate_starts.c.t)
            ).all()
        return [float(r[0]) for r in rows]

    # ------------------------------------------------------------------ import
    def import_job_files(self, folder: Path) -> int:
        """Job files written by the version before the store: imported once each (a file
        already imported is left alone), never deleted. Unreadable files are skipped.
        The folder is read once per database: later starts do not read it again (a job
        deleted from the store stays deleted, and a start does not parse every old file)."""
        if not folder.is_dir():
            return 0
        with self._tx() as conn:
            if (
                conn.execute(select(meta.c.value).where(meta.c.key == IMPORTED_KEY)).first()
                is not None
            ):
                return 0
        n = 0
        for path in sorted(folder.glob("*.json")):
            try:
                job = Job.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
                log.warning(
                    "[STORE] job file %s is unreadable (%s); not imported",
                    path.name,
                    type(e).__name__,
                )
                continue
            if not _valid_id(job.id):
                log.warning("[STORE] job file %s has no usable id; not imported", path.name)
                continue
            try:
                with self._tx(write=True) as conn:
                    if (
                        conn.execute(select(jobs.c.id).where(jobs.c.id == job.id)).first()
                        is not None
                    ):
                        continue
                    conn.execute(insert(jobs).values(id=job.id, **_summary_columns(job)))
            except (StoreError, TypeError, ValueError, AttributeError) as e:
                # One file the database refuses (an overlong owner, say) must not stop
                # the app from starting, nor the other files from being imported.
                log.warning(
                    "[STORE] job file %s could not be stored (%s); not imported",
                    path.name,
                    type(e).__name__,
                )
                continue
            n += 1
        with self._tx(write=True) as conn:
            conn.execute(
                self._insert_missing(meta, key=IMPORTED_KEY, value=f"{n} files, {time.time():.0f}")
            )
        if n:
            log.info("[STORE] imported %d job files from %s", n, folder)
        return n

    # ------------------------------------------------------------------ meta values
    def get_meta(self, key: str, default: str = "") -> str:
        with self._tx() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == key)).first()
        return str(row[0]) if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(delete(meta).where(meta.c.key == key))
            conn.execute(insert(meta).values(key=key, value=value))

    # ------------------------------------------------------------------ heroes (the library)
    def add_hero(self, hero_id: str, name: str, species: str, data: dict[str, Any]) -> None:
        now = time.time()
        with self._tx(write=True) as conn:
            conn.execute(
                insert(heroes).values(
                    id=hero_id,
                    name=name,
                    species=species,
                    created=now,
                    updated=now,
                    data=json.dumps(data, ensure_ascii=False),
                )
            )

    def get_hero(self, hero_id: str) -> dict[str, Any] | None:
        """The stored hero as a dict (id, name, species, created, updated and its data), or None."""
        if not isinstance(hero_id, str) or not hero_id or len(hero_id) > 64:
            return None
        with self._tx() as conn:
            row = conn.execute(select(heroes).where(heroes.c.id == hero_id)).first()
        return None if row is None else _hero_row(row)

    def list_heroes(self) -> list[dict[str, Any]]:
        """Every stored hero, newest first. A hero whose data cannot be read is listed by its
        columns with ``"damaged"`` set (its page says so; the others are unaffected)."""
        with self._tx() as conn:
            rows = conn.execute(select(heroes).order_by(heroes.c.created.desc())).all()
        out = []
        for row in rows:
            try:
                out.append(_hero_row(row))
            except DamagedRecord:
                out.append({**_hero_columns(row), "damaged": True})
        return out

    def rename_hero(self, hero_id: str, name: str) -> bool:
        with self._tx(write=True) as conn:
            res = conn.execute(
                update(heroes).where(heroes.c.id == hero_id).values(name=name, updated=time.time())
            )
            return bool(res.rowcount)

    def delete_hero(self, hero_id: str) -> bool:
        with self._tx(write=True) as conn:
            return bool(conn.execute(delete(heroes).where(heroes.c.id == hero_id)).rowcount)

    # ------------------------------------------------------------------ the queue of stories
    def add_queue_item(self, item_id: str, owner: str, state: str, data: dict[str, Any]) -> None:
        now = time.time()
        with self._tx(write=True) as conn:
            conn.execute(
                insert(story_queue).values(
                    id=item_id,
                    owner=owner,
                    created=now,
                    updated=now,
                    state=state,
                    data=json.dumps(data, ensure_ascii=False),
                )
            )

    def queue_items(self, *, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Queue items oldest first: id, owner, created, updated, state and their data."""
        q = select(story_queue).order_by(story_queue.c.created, story_queue.c.id)
        if states is not None:
            q = q.where(story_queue.c.state.in_(states))
        with self._tx() as conn:
            rows = conn.execute(q).all()
        out = []
        for r in rows:
            try:
                data = json.loads(r.data)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                data = {"note": "This item's saved data could not be read.", "damaged": True}
            out.append(
                {
                    **data,
                    "id": r.id,
                    "owner": r.owner,
                    "created": r.created,
                    "updated": r.updated,
                    "state": r.state,
                }
            )
        return out

    def update_queue_item(self, item_id: str, state: str | None = None, **data: Any) -> bool:
        """Change an item's state and merge ``data`` into its document, in one transaction."""
        with self._tx(write=True) as conn:
            row = conn.execute(
                select(story_queue.c.data).where(story_queue.c.id == item_id)
            ).first()
            if row is None:
                return False
            try:
                doc = json.loads(row[0])
            except ValueError:
                doc = {}
            if not isinstance(doc, dict):
                doc = {}
            doc.update(data)
            values: dict[str, Any] = {
                "data": json.dumps(doc, ensure_ascii=False),
                "updated": time.time(),
            }
            if state is not None:
                values["state"] = state
            conn.execute(update(story_queue).where(story_queue.c.id == item_id).values(**values))
            return True

    def delete_queue_item(self, item_id: str) -> bool:
        with self._tx(write=True) as conn:
            return bool(
                conn.execute(delete(story_queue).where(story_queue.c.id == item_id)).rowcount
            )


def _wal(cur: Any, wait: float = 30.0) -> None:
    """Switch a SQLite file to WAL (kept in the file: once set, later connections find it).
    On a fresh file another connection's open write (another process or thread creating the
    tables) makes the switch fail at once with "database is locked": SQLite does not wait on
    it (it would deadlock), so it is tried again until that write ends."""
    deadline = time.monotonic() + wait
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _hero_columns(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "species": row.species,
        "created": row.created,
        "updated": row.updated,
    }


def _hero_row(row: Any) -> dict[str, Any]:
    try:
        data = json.loads(row.data)
    except ValueError as e:
        raise DamagedRecord("This hero's saved data could not be read.") from e
    if not isinstance(data, dict):
        raise DamagedRecord("This hero's saved data could not be read.")
    return {**data, **_hero_columns(row)}


def _valid_id(job_id: object) -> bool:
    """Whether ``job_id`` could name a stored job (a link's ``?job=`` can hold anything;
    PostgreSQL refuses to compare the id column with a number)."""
    return isinstance(job_id, str) and 0 < len(job_id) <= 64


def _decode(job_id: str, data: str) -> Job:
    try:
        return Job.from_dict(json.loads(data))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise DamagedRecord(
            f"This gallery's saved data could not be read ({type(e).__name__})."
        ) from e


def _m1(conn: Connection) -> None:
    """Version 1: the tables (create_all made them)."""


def _m2(conn: Connection) -> None:
    """Version 2: drop rate-window rows older than an hour (kept small from now on)."""
    conn.execute(delete(rate_starts).where(rate_starts.c.t < time.time() - 3600))


def _m3(conn: Connection) -> None:
    """Version 3: the hero library and the queue of stories (create_all made the two tables;
    the queue starts running, not paused)."""
    conn.execute(delete(meta).where(meta.c.key == "queue_paused"))


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [(1, _m1), (2, _m2), (3, _m3)]


def count_jobs(store: Store) -> int:
    with store._tx() as conn:
        return int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())
