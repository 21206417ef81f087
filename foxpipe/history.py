"""Past stories for the History page, from the local log and the saved jobs."""

from __future__ import annotations

import json
import logging
from typing import Any

from foxpipe.config import Settings
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.localstore import safe_id

log = logging.getLogger(__name__)


def _counts(settings: Settings, job_id: str) -> tuple[int, int, bool, str]:
    """(approved, total, gallery available, problem) from one saved job. A missing file is
    simply not available; an unreadable or damaged one says what is wrong, for its own row."""
    try:
        path = settings.data_path / "jobs" / f"{safe_id(job_id)}.json"
    except Exception:
        return 0, 0, False, "This story's id is not valid."
    if not path.exists():
        return 0, 0, False, ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        log.warning("[HISTORY] job file %s cannot be read: %s", path.name, type(e).__name__)
        return 0, 0, False, f"Its saved gallery cannot be read on this server ({type(e).__name__})."
    except ValueError:
        log.warning("[HISTORY] job file %s is not valid JSON", path.name)
        return 0, 0, False, "Its saved gallery is damaged (not valid JSON)."
    slots = data.get("slots") if isinstance(data, dict) else None
    if not isinstance(slots, list) or not all(isinstance(s, dict) for s in slots):
        log.warning("[HISTORY] job file %s has no valid list of scenes", path.name)
        return 0, 0, False, "Its saved gallery is damaged (no valid list of scenes)."
    approved = sum(1 for s in slots if s.get("status") == "approved")
    return approved, len(slots), True, ""


def past_stories(settings: Settings, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first: title, time, job id, images approved / total, and whether the gallery can
    still be opened (its saved job exists). The local CSV holds every story row, whether or
    not it also reached Google Sheets."""
    try:
        df = CsvLog(settings.data_path).read("stories")
    except Exception as e:  # an unreadable log must not break the page
        log.warning("[SHEETS] the local story log could not be read: %s", type(e).__name__)
        return []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _, row in df.iloc[::-1].iterrows():
        job_id = str(row.get("job_id", ""))
        if job_id in seen:
            continue
        seen.add(job_id)
        approved, total, available, problem = _counts(settings, job_id)
        out.append({"title": str(row.get("title", "") or "Untitled story"), "time": str(row.get("time", "")),
                    "job_id": job_id, "approved": approved, "total": total, "available": available,
                    "problem": problem})
        if len(out) >= limit:
            break
    return out
