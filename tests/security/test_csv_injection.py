"""CSV formula injection: text a spreadsheet would run as a formula is written quoted in the
ZIP's prompts.csv and the local CSV log, and read back as typed (the Sheets backlog sends RAW)."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from foxpipe import export
from foxpipe.providers.csvlog import CsvLog
from foxpipe.safety import FORMULA_STARTS, csv_cell, csv_cell_value
from tests.imagefakes import make_job

HOSTILE = [
    '=HYPERLINK("http://127.0.0.1:9/x","click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "   =1+1",
    "\n=1+1",
    "'=1+1",
]


def dangerous(cell: str) -> bool:
    return cell.lstrip(" \n\x0b\x0c").startswith(FORMULA_STARTS)


@pytest.mark.parametrize("text", HOSTILE)
def test_cell_is_quoted_and_round_trips(text):
    assert not dangerous(csv_cell(text))
    assert csv_cell_value(csv_cell(text)) == text


def test_plain_text_and_numbers_are_untouched():
    for v in ("A fox", "it's fine", 3, -2.5, "", "'quoted'"):
        assert csv_cell(v) == v and csv_cell_value(v) == v


def test_zip_prompts_csv_has_no_formula():
    job = make_job(len(HOSTILE))
    for slot, text in zip(job.slots, HOSTILE, strict=True):
        slot.scene.text = text
        slot.prompt = text
    data = export.build_zip(job, only_approved=False)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        rows = list(csv.reader(io.StringIO(z.read("prompts.csv").decode())))
    cells = [c for row in rows[1:] for c in row]
    assert len(rows) == len(HOSTILE) + 1
    assert not [c for c in cells if dangerous(c)]
    # The text itself is all still there.
    assert [csv_cell_value(r[3]) for r in rows[1:]] == HOSTILE


def test_local_csv_log_has_no_formula_and_reads_back_as_typed(tmp_path):
    log = CsvLog(tmp_path)
    for i, text in enumerate(HOSTILE):
        log.log_image(
            {"scene": i + 1, "scene_text": text, "prompt": text, "marker": "NoSheet_pending"}
        )
    log.log_story({"title": HOSTILE[0], "answers": HOSTILE[1], "marker": "NoSheet_pending"})
    for path in (log.images, log.stories):
        with open(path, newline="", encoding="utf-8") as f:
            cells = [c for row in list(csv.reader(f))[1:] for c in row]
        assert cells and not [c for c in cells if dangerous(c)], path
    # What the app (History) and the Sheets backlog read is the original text.
    assert list(log.read("images")["scene_text"]) == HOSTILE
    assert [row["prompt"] for _, row in log.pending("images", "NoSheet")] == HOSTILE
    assert log.read("stories")["title"][0] == HOSTILE[0]
