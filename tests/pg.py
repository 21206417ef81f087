"""A real PostgreSQL for the store's tests: a throwaway cluster per test session.

``pg_server`` (session) runs ``initdb`` and ``pg_ctl`` from /usr/lib/postgresql/<v>/bin in a
temporary folder, on a free loopback port with its unix socket in that folder, and removes
it at the end. As root, the server runs as the ``postgres`` user (PostgreSQL refuses root).
``pg_database`` makes a fresh database per test on that server and drops it afterwards.

Missing binaries FAIL the tests that need them (never a skip): ``.ci/run`` installs the
Debian package ``postgresql`` where it is missing.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import psycopg

MISSING = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found under /usr/lib/postgresql/*/bin "
    "or on PATH. Install them with `apt-get install -y postgresql` (.ci/run does this); the store's "
    "tests run against a real PostgreSQL and are never skipped."
)


@dataclass
class PgServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )


def find_bindir() -> Path | None:
    """The newest PostgreSQL bin folder that has initdb and pg_ctl."""

    def version(p: str) -> tuple[int, ...]:
        v = Path(p).parent.name
        return tuple(int(x) for x in v.split(".") if x.isdigit()) or (0,)

    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if os.access(Path(cand) / "initdb", os.X_OK) and os.access(Path(cand) / "pg_ctl", os.X_OK):
            return Path(cand)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    return None


def _free_port() -> int:
    from tests.conftest import free_port

    return free_port()


def _run(cmd: list[str], as_user: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
    if as_user is not None:
        cmd = ["runuser", "-u", as_user, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def start_server(bindir: Path, root: Path) -> tuple[PgServer, str | None]:
    """initdb + pg_ctl start in ``root``; the server and the user it runs as (None: us)."""
    as_user: str | None = None
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(
                "Running as root, but there is no `postgres` user to run the test PostgreSQL as."
            )
        as_user = "postgres"
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, sock, logfile = root / "data", root, root / "server.log"
    res = _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        as_user,
        120,
    )
    if res.returncode != 0:
        pytest.fail(f"initdb failed for the test PostgreSQL:\n{res.stdout}\n{res.stderr}")
    last = ""
    for _ in range(5):  # a free port can be taken between finding it and binding it
        port = _free_port()
        opts = (
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        res = _run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(logfile),
                "-w",
                "-t",
                "60",
                "-o",
                opts,
                "start",
            ],
            as_user,
            90,
        )
        if res.returncode == 0:
            return PgServer("127.0.0.1", port, "postgres"), as_user
        try:
            last = logfile.read_text(errors="replace")[-2000:]
        except OSError:
            last = res.stderr
    pytest.fail(f"The test PostgreSQL did not start:\n{last}")


def stop_server(bindir: Path, root: Path, as_user: str | None) -> None:
    _run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(root / "data"),
            "-m",
            "immediate",
            "-w",
            "-t",
            "30",
            "stop",
        ],
        as_user,
        60,
    )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(MISSING)
    # As root the cluster belongs to `postgres`, which must be able to reach the folder:
    # /tmp rather than a TMPDIR under root's home.
    root = Path(tempfile.mkdtemp(prefix="foxpipe-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    as_user: str | None = None
    try:
        server, as_user = start_server(bindir, root)
        yield server
    finally:
        stop_server(bindir, root, as_user)
        shutil.rmtree(root, ignore_errors=True)


_names = itertools.count()


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database for one test; its SQLAlchemy URL."""
    name = f"foxpipe_{os.getpid()}_{next(_names)}"
    with pg_server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.url(name)
    with pg_server.admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
