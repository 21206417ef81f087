"""The prompt log's csv.writer appends write byte for byte what the pandas writer wrote for the
rows the app logs (one row per call; any plain value, any text).

``pandas_append`` is the earlier ``CsvLog._append`` (a DataFrame per call, ``to_csv(mode="a")``);
every test writes the same rows with it and with ``CsvLog`` and compares the files' bytes."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foxpipe.providers import csvlog
from foxpipe.providers.csvlog import IMAGE_COLUMNS, STORY_COLUMNS, CsvLog
from foxpipe.safety import csv_cell

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pandas_append(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """The old writer, as it was (reference)."""
    if not rows:
        return
    df = pd.DataFrame([{c: csv_cell(r.get(c, "")) for c in columns} for r in rows], columns=columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    csvlog._upgrade(path, columns)
    df.to_csv(path, mode="a", header=not path.exists(), index=False, quoting=csv.QUOTE_ALL)


@contextmanager
def two_logs() -> Iterator[tuple[CsvLog, Path]]:
    """A CsvLog and a folder for the reference writer, side by side."""
    with tempfile.TemporaryDirectory() as d:
        yield CsvLog(Path(d) / "new"), Path(d) / "old"


KINDS = {"images": ("log_images.csv", IMAGE_COLUMNS), "stories": ("log_stories.csv", STORY_COLUMNS)}

# ---- values: everything the app logs (str, int, float, bool, "" for a missing key) and more
SPECIAL_TEXT = [
    "",
    " ",
    ",",
    '"',
    '""',
    'a "quoted", text',
    "line\nbreak",
    "carriage\rreturn",
    "crlf\r\n",
    "\n",
    "\r",
    "=1+1",
    "+1",
    "-1",
    "@SUM(A1)",
    "\t=1",
    "'=1+1",
    '=HYPERLINK("http://x","y")',
    "🦊 Füchse · 狐",
    "nan",
    "NaN",
    "None",
    "True",
    "1.0",
    "\x00nul",
    "trailing\\",
]
SPECIAL_FLOATS = [
    float("nan"),
    float("inf"),
    0.1,
    0.04,
    1.0,
    0.0,
    -0.0,
    1e-7,
    1e20,
    1e16,
    1e15 + 0.3,
    123.456,
    2.5,
    1 / 3,
]
SPECIAL_INTS = [0, 1, -1, 20, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64]

texts = st.one_of(st.sampled_from(SPECIAL_TEXT), st.text(max_size=30))
ints = st.one_of(st.sampled_from(SPECIAL_INTS), st.integers(-(2**70), 2**70), st.integers(-5, 200))
floats = st.one_of(
    st.sampled_from(SPECIAL_FLOATS),
    st.floats(),
    st.floats(0, 100).map(lambda x: round(x, 4)),  # as cost_usd and seconds are logged
)
values = st.one_of(texts, ints, floats, st.none(), st.booleans())


def rows_of(columns: list[str], cells: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Rows with any subset of the columns (a missing key is an empty cell) and a stray key."""
    return st.dictionaries(
        st.sampled_from([*columns, "not_a_column"]), cells, max_size=len(columns) + 1
    )


def image_row() -> st.SearchStrategy[dict[str, Any]]:
    """An image row as the app makes it (every key), with any of the values above."""
    return st.fixed_dictionaries(
        {
            "time": st.just("2026-05-09 07:35:25"),
            "story_id": texts,
            "job_id": texts,
            "scene": st.integers(1, 40),
            "scene_text": texts,
            "prompt": texts,
            "model": texts,
            "image_url": texts,
            "status": st.sampled_from(["ready", "failed", "clip", "video", "rejected"]),
            "attempts": st.integers(0, 9),
            "seconds": st.one_of(st.just(""), st.floats(0, 500).map(lambda x: round(x, 2))),
            "cost_usd": st.floats(0, 2).map(lambda x: round(x, 4)),
            "path": texts,
            "continuity_status": texts,
            "continuity_score": st.one_of(st.just(""), st.integers(0, 100)),
            "continuity_on_model": st.one_of(st.just(""), st.booleans()),
            "continuity_defects": texts,
            "continuity_note": texts,
            "continuity_checker": texts,
            "auto_fix": st.one_of(st.just(""), st.booleans()),
        }
    )


def assert_same(log: CsvLog, old: Path, kind: str) -> None:
    name, _ = KINDS[kind]
    new_bytes, old_bytes = (log.root / name).read_bytes(), (old / name).read_bytes()
    assert new_bytes == old_bytes


def write_one_per_call(kind: str, rows: list[dict[str, Any]]) -> None:
    """A fresh file, then appends to it, one row per call (as the app logs): the same bytes
    after every row."""
    name, columns = KINDS[kind]
    with two_logs() as (log, old):
        for row in rows:
            (log.log_image if kind == "images" else log.log_story)(row)
            pandas_append(old / name, columns, [row])
            assert_same(log, old, kind)


@SETTINGS
@given(st.lists(st.one_of(image_row(), rows_of(IMAGE_COLUMNS, values)), min_size=1, max_size=4))
def test_log_image_writes_what_pandas_wrote(rows):
    write_one_per_call("images", rows)


@SETTINGS
@given(st.lists(rows_of(STORY_COLUMNS, values), min_size=1, max_size=3))
def test_log_story_writes_what_pandas_wrote(rows):
    write_one_per_call("stories", rows)


@SETTINGS
@given(
    st.sampled_from(sorted(KINDS)),
    st.lists(st.lists(rows_of(IMAGE_COLUMNS, texts), max_size=6), min_size=1, max_size=3),
)
def test_append_rows_of_several_rows_writes_what_pandas_wrote(kind, batches):
    """Several rows at once (the Sheets backlog's text rows)."""
    name, columns = KINDS[kind]
    with two_logs() as (log, old):
        for rows in batches:
            log.append_rows(kind, rows)
            pandas_append(old / name, columns, rows)
        if any(batches):
            assert_same(log, old, kind)
        else:
            assert not (log.root / name).exists() and not (old / name).exists()


@SETTINGS
@given(
    st.text(st.sampled_from('ab,"\r\n=🦊'), max_size=40).map(lambda t: t.encode("utf-8")),
    st.lists(rows_of(IMAGE_COLUMNS, values), min_size=1, max_size=3),
)
def test_appends_to_an_existing_file(start, rows):
    """A file already there (written by the old writer, with more text after it, say a last
    row cut short) gets the same bytes."""
    with two_logs() as (log, old):
        seed = CsvLog(old.parent / "seed")
        pandas_append(seed.images, IMAGE_COLUMNS, [{"scene": 1, "prompt": "=1+1"}])
        for folder in (log.root, old):
            folder.mkdir(parents=True)
            (folder / "log_images.csv").write_bytes(seed.images.read_bytes() + start)
        for row in rows:  # one row per call, as the app logs
            log.append_rows("images", [row])
            pandas_append(old / "log_images.csv", IMAGE_COLUMNS, [row])
        assert_same(log, old, "images")


def test_an_empty_file_gets_no_header():
    with two_logs() as (log, old):
        for folder in (log.root, old):
            folder.mkdir(parents=True)
            (folder / "log_images.csv").write_bytes(b"")
        log.log_image({"scene": 1})
        pandas_append(old / "log_images.csv", IMAGE_COLUMNS, [{"scene": 1}])
        assert_same(log, old, "images")
        assert (log.root / "log_images.csv").read_bytes().count(b"\n") == 1


def test_an_old_log_is_upgraded_then_appended():
    """A log from before the continuity columns: the new columns are added, then the row."""
    old_columns = IMAGE_COLUMNS[:13] + ["marker"]
    with two_logs() as (log, old):
        for folder in (log.root, old):
            folder.mkdir(parents=True)
            pd.DataFrame(
                [{"scene": "1", "prompt": "'=1", "marker": "sheet"}], columns=old_columns
            ).to_csv(folder / "log_images.csv", index=False, quoting=csv.QUOTE_ALL)
        row = {"scene": 2, "prompt": "=2", "cost_usd": 0.04, "auto_fix": True, "marker": "x"}
        log.log_image(row)
        pandas_append(old / "log_images.csv", IMAGE_COLUMNS, [row])
        assert_same(log, old, "images")
        with open(log.images, newline="", encoding="utf-8") as f:
            assert next(csv.reader(f)) == IMAGE_COLUMNS


@pytest.mark.parametrize("fresh", [True, False])
@pytest.mark.parametrize(
    "rows",
    [
        [{"prompt": "bad \ud800"}],
        [{"prompt": "ok", "scene": "1"}, {"prompt": "bad \ud800", "scene": "2"}],
    ],
)
def test_text_that_cannot_be_encoded_fails_as_before(fresh, rows):
    """A lone surrogate in a text column: the same error, nothing written (not even the folder
    or the header of a new file)."""
    with two_logs() as (log, old):
        if not fresh:
            log.log_image({"scene": 1})
            pandas_append(old / "log_images.csv", IMAGE_COLUMNS, [{"scene": 1}])
        with pytest.raises(UnicodeEncodeError):
            log.append_rows("images", rows)
        with pytest.raises(UnicodeEncodeError):
            pandas_append(old / "log_images.csv", IMAGE_COLUMNS, rows)
        assert log.root.exists() == old.exists() == (not fresh)
        if not fresh:
            assert_same(log, old, "images")


def test_what_is_written_reads_back_as_typed(tmp_path):
    log = CsvLog(tmp_path)
    log.log_image(
        {"scene": 3, "prompt": "=1+1", "cost_usd": 0.04, "auto_fix": False, "seconds": None}
    )
    row = log.read("images").iloc[0]
    assert (row["scene"], row["prompt"], row["cost_usd"], row["auto_fix"], row["seconds"]) == (
        "3",
        "=1+1",
        "0.04",
        "False",
        "",
    )


@pytest.mark.parametrize(
    "value", [None, float("nan"), float("inf"), -0.0, 0.1, 1e20, 2**64, True, "", "=1+1", "nan"]
)
def test_each_kind_of_value_is_written_as_pandas_wrote_it(value):
    with two_logs() as (log, old):
        log.log_image({"scene": value, "prompt": value})
        pandas_append(old / "log_images.csv", IMAGE_COLUMNS, [{"scene": value, "prompt": value}])
        assert_same(log, old, "images")
