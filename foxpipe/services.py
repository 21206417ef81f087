"""Which provider serves each role, decided from the settings. The only module that
knows every vendor; the rest of the package talks to the protocols in providers.base."""

from __future__ import annotations

from dataclasses import dataclass

from foxpipe.config import Settings
from foxpipe.generation import Pipeline
from foxpipe.providers.base import ImageModel, ImageStore, PromptLog, TextModel
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.localstore import LocalStore
from foxpipe.providers.offline import OfflineImages, OfflineText
from foxpipe.ratelimit import RateLimiter


def text_model(settings: Settings) -> TextModel:
    if settings.openai_live:
        from foxpipe.providers.openai import OpenAIText

        return OpenAIText(settings)
    return OfflineText()


def image_model(settings: Settings) -> ImageModel:
    if settings.openai_live:
        from foxpipe.providers.openai import OpenAIImages

        return OpenAIImages(settings)
    return OfflineImages(delay=settings.offline_delay)


def image_limits(settings: Settings) -> tuple[float, int]:
    """(images per minute, concurrent requests) for the limiter. The account's limit
    applies to OpenAI; the embedded renderer is only capped so progress stays visible."""
    if settings.openai_live:
        return settings.images_per_minute, settings.max_concurrent_images
    return 6000.0, min(4, settings.max_concurrent_images)


def image_store(settings: Settings) -> ImageStore:
    return LocalStore(settings.data_path)


def prompt_log(settings: Settings) -> PromptLog:
    return CsvLog(settings.data_path)


def build_pipeline(settings: Settings, limiter: RateLimiter) -> Pipeline:
    return Pipeline(
        images=image_model(settings),
        store=image_store(settings),
        log=prompt_log(settings),
        limiter=limiter,
        settings=settings,
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
            f"OpenAI ({s.openai_chat_model}, {s.openai_image_model})" if s.openai_live else "Offline writer and renderer",
        ),
        ServiceStatus("Image hosting", s.cloudinary_live, "Cloudinary" if s.cloudinary_live else "Local files"),
        ServiceStatus("Prompt log", s.sheets_live, "Google Sheets" if s.sheets_live else "Local CSV"),
        ServiceStatus(
            "Video",
            s.kling_live or s.hailuo_live,
            ", ".join(n for n, on in (("Kling", s.kling_live), ("Hailuo", s.hailuo_live)) if on) or "Local slideshow",
        ),
    ]
