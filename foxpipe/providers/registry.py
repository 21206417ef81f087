"""Which provider serves each role, decided from the settings. The only module that
knows every vendor; the rest of the package talks to the protocols in providers.base."""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from typing import Any

from foxpipe.config import Settings
from foxpipe.engine.generation import Pipeline
from foxpipe.engine.ratelimit import RateLimiter
from foxpipe.providers.base import ImageModel, ImageStore, PromptLog, TextModel, VisionCheck
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.localstore import LocalStore
from foxpipe.providers.offline import OfflineImages, OfflineText


def text_model(settings: Settings) -> TextModel:
    if settings.openai_live:
        from foxpipe.providers.openai import OpenAIText

        return OpenAIText(settings)
    return OfflineText(settings.narration_seconds, settings.narration_words_per_second)


def image_model(settings: Settings) -> ImageModel:
    if settings.openai_live:
        from foxpipe.providers.openai import OpenAIImages

        return OpenAIImages(settings)
    return OfflineImages(delay=settings.offline_delay)


def vision_check(settings: Settings) -> VisionCheck:
    """The continuity checker: OpenAI's vision model when keyed, else the embedded check."""
    if settings.openai_live:
        from foxpipe.providers.vision_openai import OpenAIVision

        return OpenAIVision(settings)
    from foxpipe.providers.vision_offline import OfflineVision

    return OfflineVision()


def image_limits(settings: Settings) -> tuple[float, int]:
    """(images per minute, concurrent requests) for the limiter. The account's limit
    applies to OpenAI; the embedded renderer is only capped so progress stays visible."""
    if settings.openai_live:
        return settings.images_per_minute, settings.max_concurrent_images
    return 6000.0, min(4, settings.max_concurrent_images)


# Providers with state (a background thread, a problem seen at run time) are made once per
# process and settings, so the workflow, every pipeline and the sidebar share them.
_SHARED: dict[tuple[Any, ...], Any] = {}
_SHARED_LOCK = threading.Lock()


def image_store(settings: Settings) -> ImageStore:
    if not settings.cloudinary_live:
        return LocalStore(settings.data_path)
    from foxpipe.providers.cloudinary import CloudinaryStore

    key = (
        "cloudinary",
        settings.cloudinary_url,
        settings.cloudinary_preset,
        str(settings.data_path.resolve()),
    )
    with _SHARED_LOCK:
        store = _SHARED.get(key)
        if store is None:
            store = _SHARED[key] = CloudinaryStore(
                settings.cloudinary_url,
                settings.data_path,
                preset=settings.cloudinary_preset,
                redact=settings.redact,
                backoff_base=settings.retry_base_seconds,
            )
        return store


def prompt_log(settings: Settings) -> PromptLog:
    if not settings.sheets_live:
        return CsvLog(settings.data_path)
    from foxpipe.providers.sheets import SheetsLog

    sa = settings.google_service_account
    key = (
        "sheets",
        settings.google_sheet_id,
        sa.get("client_email"),
        sa.get("private_key_id"),
        sa.get("token_uri"),
        str(settings.data_path.resolve()),
    )
    with _SHARED_LOCK:
        plog = _SHARED.get(key)
        if plog is None or not plog.alive:
            plog = _SHARED[key] = SheetsLog(
                settings.google_sheet_id, sa, settings.data_path, redact=settings.redact
            )
        return plog


def close_shared(timeout: float = 5.0) -> None:
    """Flush and stop the shared providers (app shutdown, end of a test)."""
    with _SHARED_LOCK:
        items = list(_SHARED.values())
        _SHARED.clear()
    for item in items:
        close = getattr(item, "close", None)
        if close is not None:
            close(timeout)


atexit.register(close_shared)


def runtime_problems(settings: Settings) -> list[str]:
    """Problems found while running (a sheet that 404s, refused credentials), for the sidebar."""
    out = []
    for item in (image_store(settings), prompt_log(settings)):
        problem = getattr(item, "problem", "")
        if problem:
            out.append(problem)
    return out


def build_pipeline(settings: Settings, limiter: RateLimiter) -> Pipeline:
    return Pipeline(
        images=image_model(settings),
        store=image_store(settings),
        log=prompt_log(settings),
        limiter=limiter,
        settings=settings,
        backoff_base=settings.retry_base_seconds,
    )


@dataclass
class ServiceStatus:
    name: str
    live: bool
    detail: str


def status(settings: Settings) -> list[ServiceStatus]:
    """What the sidebar shows: which services are live, which fall back, and why."""
    s = settings
    return [
        ServiceStatus(
            "Story & images",
            s.openai_live,
            f"OpenAI ({s.openai_chat_model}, {s.openai_image_model})"
            if s.openai_live
            else "Offline writer and renderer",
        ),
        ServiceStatus(
            "Image hosting",
            s.cloudinary_live,
            ("Cloudinary" + (" (unsigned preset)" if s.cloudinary_preset else ""))
            if s.cloudinary_live
            else "Local files: images stay on this server (set CLOUDINARY_URL to host them)",
        ),
        _log_status(s),
        ServiceStatus(
            "Video",
            s.kling_live or s.hailuo_live,
            ", ".join(n for n, on in (("Kling", s.kling_live), ("Hailuo", s.hailuo_live)) if on)
            or "Local slideshow",
        ),
    ]


def _log_status(s: Settings) -> ServiceStatus:
    if not s.sheets_live:
        return ServiceStatus("Prompt log", False, "Local CSV")
    state = getattr(prompt_log(s), "state", "live")
    if state == "unavailable":
        return ServiceStatus("Prompt log", False, "Local CSV for now (Google Sheets unavailable)")
    return ServiceStatus(
        "Prompt log", True, "Google Sheets" + (" (connecting…)" if state == "connecting" else "")
    )
