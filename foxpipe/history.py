"""Past stories for the History page, from the local log and the saved jobs."""

from __future__ import annotations

import json
from typing import Any

from foxpipe.config import Settings
from foxpipe.providers.csvlog import CsvLog


def past_stories(settings: Settings, limit: int = 50) -> list[dict[str, Any]]:
    df = CsvLog(settings.data_path).read("stories")
    out: list[dict[str, Any]] = []
    for _, row in df.iloc[::-1].head(limit).iterrows():
        job_id = str(row.get("job_id", ""))
        approved = 0
        path = settings.data_path / "jobs" / f"{job_id}.json"
        if job_id and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                approved = sum(1 for s in data.get("slots", []) if s.get("status") == "approved")
            except (OSError, ValueError):
                pass
        out.append({"title": row.get("title", ""), "time": row.get("time", ""), "job_id": job_id, "approved": approved})
    return out
