"""Past stories for the History page, from the local log and the saved jobs."""

from __future__ import annotations

import json
import logging
from typing import Any

from foxpipe.config import Settings
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.localstore import safe_id

log = logging.getLogger(__name__)


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
        approved, total, available = 0, 0, False
        try:
            path = settings.data_path / "jobs" / f"{safe_id(job_id)}.json"
            data = json.loads(path.read_text(encoding="utf-8"))
            slots = data.get("slots", [])
            total = len(slots)
            approved = sum(1 for s in slots if s.get("status") == "approved")
            available = True
        except (OSError, ValueError, AttributeError):
            pass
        out.append({"title": row.get("title", "") or "Untitled story", "time": row.get("time", ""),
                    "job_id": job_id, "approved": approved, "total": total, "available": available})
        if len(out) >= limit:
            break
    return out
