"""Past stories for the History page, from the store (every job, newest first)."""

from __future__ import annotations

import logging
import time
from typing import Any

from foxpipe.engine.jobs import JobRegistry
from foxpipe.store import StoreError

log = logging.getLogger(__name__)


def past_stories(
    registry: JobRegistry, owner: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first: title, time, job id, images approved / total, the owner. Read from the
    store's summary columns, so one job whose document is damaged still lists (and says so
    when opened) and never hides the others."""
    try:
        rows = registry.store.list_jobs(owner=owner, limit=limit)
    except StoreError as e:
        log.warning("[STORE] History could not be read: %s", e.message)
        raise
    return [
        {
            "title": r.title or "Untitled story",
            "time": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)),
            "job_id": r.id,
            "owner": r.owner,
            "approved": r.approved,
            "total": r.total,
            "done": r.done,
        }
        for r in rows
    ]
