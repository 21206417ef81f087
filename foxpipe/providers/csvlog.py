"""The local prompt log: two CSV files (stories, images), appended with the standard library's
``csv.writer`` (the bytes pandas' ``to_csv`` wrote for the same rows) and read with pandas
(imported only when a log is read or rewritten).

Text cells that a spreadsheet would run as a formula are written quoted (``safety.csv_cell``)
and read back as typed (``safety.csv_cell_value``), so the Sheets backlog still sends the
original text (RAW)."""

from __future__ import annotations

import csv
import io
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from foxpipe.safety import csv_cell, csv_cell_value

if TYPE_CHECKING:
    import pandas as pd

STORY_COLUMNS = ["time", "story_id", "job_id", "title", "answers", "character_sheet", "marker"]
IMAGE_COLUMNS = [
    "time",
    "story_id",
    "job_id",
    "scene",
    "scene_text",
    "prompt",
    "model",
    "image_url",
    "status",
    "attempts",
    "seconds",
    "cost_usd",
    "path",
    # Continuity: the image's verdict (foxpipe.engine.continuity.log_fields) and whether it was
    # made by an automatic fix.
    "continuity_status",
    "continuity_score",
    "continuity_on_model",
    "continuity_defects",
    "continuity_note",
    "continuity_checker",
    "auto_fix",
    "marker",
]


# Every cell quoted: a lone carriage return inside a cell would otherwise end the row.
QUOTING: Final = csv.QUOTE_ALL


class CsvLog:
    name = "csv"
    _lock = threading.Lock()  # one writer at a time across every CsvLog in the process

    def __init__(self, root: Path):
        self.root = Path(root)
        self.stories = self.root / "log_stories.csv"
        self.images = self.root / "log_images.csv"

    def _append(self, path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        # Encoded before the file is touched: text utf-8 cannot hold (a lone surrogate) fails
        # here, and nothing is written.
        data = _csv_text([[_cell(r.get(c, "")) for c in columns] for r in rows]).encode("utf-8")
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            _upgrade(path, columns)
            header = b"" if path.exists() else _csv_text([columns]).encode("utf-8")
            with path.open("ab") as f:
                f.write(header + data)

    def log_story(self, row: dict[str, Any]) -> None:
        self._append(self.stories, STORY_COLUMNS, [row])

    def log_image(self, row: dict[str, Any]) -> None:
        self._append(self.images, IMAGE_COLUMNS, [row])

    def append_rows(self, kind: str, rows: list[dict[str, Any]]) -> None:
        if kind == "stories":
            self._append(self.stories, STORY_COLUMNS, rows)
        else:
            self._append(self.images, IMAGE_COLUMNS, rows)

    def read(self, kind: str) -> pd.DataFrame:
        path, cols = (
            (self.stories, STORY_COLUMNS) if kind == "stories" else (self.images, IMAGE_COLUMNS)
        )
        import pandas as pd

        if not path.exists():
            return pd.DataFrame(columns=cols)
        with self._lock:
            return _restore(pd.read_csv(path, dtype=str, keep_default_na=False))

    # ------------------------------------------------------------------ markers (Sheets backlog)
    def _paths(self, kind: str) -> tuple[Path, list[str]]:
        return (self.stories, STORY_COLUMNS) if kind == "stories" else (self.images, IMAGE_COLUMNS)

    def pending(self, kind: str, prefix: str, start: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """Rows (by position in the file) whose marker starts with ``prefix``."""
        import pandas as pd

        path, _ = self._paths(kind)
        with self._lock:
            if not path.exists():
                return []
            df = pd.read_csv(path, dtype=str, keep_default_na=False, skiprows=range(1, start + 1))
        if "marker" not in df.columns:
            return []
        hits = _restore(df[df["marker"].str.startswith(prefix)])
        return [(start + int(i), row.to_dict()) for i, row in hits.iterrows()]

    def set_markers(self, kind: str, positions: list[int], marker: str) -> None:
        """Rewrite the marker of rows by position (atomic replace, under the process lock)."""
        if not positions:
            return
        import pandas as pd

        path, _ = self._paths(kind)
        with self._lock:
            if not path.exists():
                return
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
            rows = [p for p in positions if 0 <= p < len(df)]
            df.loc[rows, "marker"] = marker
            tmp = path.with_suffix(".tmp")
            df.to_csv(tmp, index=False, quoting=QUOTING)
            tmp.replace(path)


_UPGRADED: set[Path] = set()  # logs whose header was looked at in this process


def _upgrade(path: Path, columns: list[str]) -> None:
    """A log written with fewer columns (before the continuity columns) gets the new ones,
    empty, so every row lines up with the header (atomic replace; called under the lock)."""
    if path in _UPGRADED or not path.exists():
        return
    _UPGRADED.add(path)
    with path.open(encoding="utf-8", newline="") as f:
        header = next(csv.reader(f), [])
    if header == columns or not header:
        return
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = df.reindex(columns=[*columns, *[c for c in df.columns if c not in columns]], fill_value="")
    tmp = path.with_suffix(".tmp")
    df.to_csv(tmp, index=False, quoting=QUOTING)
    tmp.replace(path)


def _cell(value: Any) -> Any:
    """A value as its cell holds it: text quoted against formulas, None and NaN empty; every
    other value as ``str`` writes it (floats as repr), which is what pandas wrote for them."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return csv_cell(value)


def _csv_text(lines: list[list[Any]]) -> str:
    """Rows as the log holds them: every cell quoted, os.linesep after each row."""
    buf = io.StringIO()
    csv.writer(buf, quoting=QUOTING, lineterminator=os.linesep).writerows(lines)
    return buf.getvalue()


def _restore(df: pd.DataFrame) -> pd.DataFrame:
    """The cells as they were given to the log (formula quoting undone)."""
    return df.map(csv_cell_value) if len(df) else df
