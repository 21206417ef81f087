"""The store on SQLite and on PostgreSQL: how fast a job changes, and how fast History lists.

Starts a throwaway PostgreSQL the way the tests do (tests/pg.py). For each backend it prints:

- ``update/s``: update_job transactions per second on one 20-image job (the worker's unit of
  work: read the document, change one slot, write it back), one thread and 8 threads
- ``2 stores``: the same with 8 threads split over two Store objects (two processes' worth)
- ``get/s``: get_job per second; ``list ms``: list_jobs (History) over 200 jobs, in ms

Usage: ``python benchmarks/store.py`` (about 10 s on 2 cores).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foxpipe.domain import quiz, story  # noqa: E402
from foxpipe.domain.models import Job, Slot  # noqa: E402
from foxpipe.store import Store  # noqa: E402
from tests.pg import find_bindir, start_server, stop_server  # noqa: E402


def make_job() -> Job:
    s = story.offline_story(quiz.validate(quiz.defaults()).answers)
    return Job(
        story=s,
        slots=[Slot(index=i, scene=sc, prompt=sc.text) for i, sc in enumerate(s.scenes)],
        owner="b",
    )


def bump(j: Job) -> None:
    j.slots[0].attempts += 1


def updates_per_second(stores: list[Store], job_id: str, threads: int, per_thread: int) -> float:
    def work(k: int) -> None:
        s = stores[k % len(stores)]
        for _ in range(per_thread):
            s.update_job(job_id, bump)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return threads * per_thread / (time.perf_counter() - t0)


def measure(name: str, url: str) -> None:
    a, b = Store(url), Store(url)
    try:
        job = make_job()
        a.add_job(job)
        one = updates_per_second([a], job.id, 1, 200)
        eight = updates_per_second([a], job.id, 8, 50)
        two = updates_per_second([a, b], job.id, 8, 50)
        assert a.get_job(job.id).slots[0].attempts == 1000, "an update was lost"
        t0 = time.perf_counter()
        for _ in range(300):
            a.get_job(job.id)
        gets = 300 / (time.perf_counter() - t0)
        for _ in range(199):
            a.add_job(make_job())
        t0 = time.perf_counter()
        for _ in range(20):
            rows = a.list_jobs(limit=200)
        list_ms = (time.perf_counter() - t0) / 20 * 1000
        assert len(rows) == 200
        print(f"{name:<11} {one:>9.0f} {eight:>9.0f} {two:>9.0f} {gets:>8.0f} {list_ms:>8.1f}")
    finally:
        a.close()
        b.close()


def main() -> None:
    print(
        f"{'backend':<11} {'update/s':>9} {'8 threads':>9} {'2 stores':>9} {'get/s':>8} {'list ms':>8}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="foxpipe-bench-"))
    try:
        measure("sqlite", f"sqlite:///{(tmp / 'foxpipe.db').as_posix()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bindir = find_bindir()
    if bindir is None:
        print("postgresql  (not installed: apt-get install -y postgresql)")
        return
    root = Path(tempfile.mkdtemp(prefix="foxpipe-pg-bench-"))
    as_user = None
    try:
        t0 = time.perf_counter()
        server, as_user = start_server(bindir, root)
        started = time.perf_counter() - t0
        with server.admin() as conn:
            conn.execute("CREATE DATABASE bench")
        measure("postgresql", server.url("bench"))
        print(f"(the throwaway PostgreSQL cluster started in {started:.1f} s)")
    finally:
        stop_server(bindir, root, as_user)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
