"""Settings: read once from ``st.secrets`` first, then the environment; validated;
says which services are live. Nothing here ever prints a secret."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SECRET_FIELDS = (
    "openai_api_key",
    "cloudinary_url",
    "kling_access_key",
    "kling_secret_key",
    "hailuo_api_key",
    "app_password",
)


@dataclass(frozen=True)
class Settings:
    # OpenAI
    openai_api_key: str = ""
    openai_base_url: str = ""
    openai_chat_model: str = "gpt-5.4-mini"
    openai_image_model: str = "gpt-image-2"
    openai_image_quality: str = "medium"
    openai_moderation: str = "auto"
    openai_use_reference: bool = True
    chat_timeout: float = 120.0
    image_timeout: float = 180.0
    # Rate limit and retries
    images_per_minute: float = 5.0
    max_concurrent_images: int = 10
    image_retries: int = 3
    retry_base_seconds: float = 1.0  # first backoff; doubles per retry, with jitter
    # Storage and log
    cloudinary_url: str = ""
    cloudinary_preset: str = ""
    google_sheet_id: str = ""
    google_service_account: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # Video
    kling_access_key: str = ""
    kling_secret_key: str = ""
    kling_base_url: str = "https://api-singapore.klingai.com"
    hailuo_api_key: str = ""
    hailuo_base_url: str = "https://api.minimax.io"
    kling_model: str = "kling-v2-1"
    kling_mode: str = "std"
    hailuo_model: str = "MiniMax-Hailuo-2.3"
    kling_cost_per_clip: float = 0.0  # US$; 0 uses the built-in estimate
    hailuo_cost_per_clip: float = 0.0
    video_http_timeout: float = 60.0  # seconds per request to a video provider
    video_poll_interval: float = 10.0  # seconds between status checks of a clip
    clip_timeout: float = 900.0  # seconds one clip may take, create to download
    clip_retries: int = 3
    # Access and cost
    app_password: str = ""
    allowed_email_domains: str = ""
    auth_configured: bool = False  # an [auth] section in secrets.toml: use st.login
    max_images_per_story: int = 40
    max_regenerations_per_image: int = 5
    daily_image_budget: int = 500
    job_ttl_hours: float = 24.0
    # Local
    data_dir: str = "data"
    offline_delay: float = 0.4  # seconds per embedded image, so progress is visible
    gallery_refresh: float = 1.0  # seconds between gallery refreshes while work runs
    # Continuity check (every image compared with the hero's reference)
    continuity: str = "fix"  # off | flag | fix (regenerate once an image below the threshold)
    continuity_threshold: int = 70  # score 0-100 below which an image is off model
    openai_vision_model: str = "gpt-5.4-mini"
    vision_requests_per_minute: float = 60.0
    vision_timeout: float = 60.0  # seconds per check request
    vision_retries: int = 2  # retries of a check after a timeout, 429 or server error
    problems: tuple[str, ...] = ()  # configuration problems, shown in the sidebar

    @property
    def openai_live(self) -> bool:
        return bool(self.openai_api_key)

    @property
    def offline(self) -> bool:
        return not self.openai_live

    @property
    def cloudinary_live(self) -> bool:
        return bool(self.cloudinary_url) and not any(p.startswith("CLOUDINARY") for p in self.problems)

    @property
    def sheets_live(self) -> bool:
        return bool(self.google_sheet_id and self.google_service_account)

    @property
    def kling_live(self) -> bool:
        return bool(self.kling_access_key and self.kling_secret_key)

    @property
    def hailuo_live(self) -> bool:
        return bool(self.hailuo_api_key)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def secret_values(self) -> list[str]:
        """Every secret value, for redaction."""
        vals = [getattr(self, f) for f in SECRET_FIELDS]
        sa = self.google_service_account or {}
        vals += [str(sa.get("private_key", "")), str(sa.get("private_key_id", ""))]
        if self.cloudinary_url:
            parsed = urlparse(self.cloudinary_url)
            vals += [parsed.password or ""]
        return [v for v in vals if v and len(v) >= 6]

    def redact(self, text: str) -> str:
        for v in self.secret_values():
            text = text.replace(v, "•••")
        return text


_BOOL_TRUE = {"1", "true", "yes", "on"}


def _coerce(name: str, typ: Any, value: Any, problems: list[str]) -> Any:
    try:
        if typ is bool or typ == "bool":
            return value if isinstance(value, bool) else str(value).strip().lower() in _BOOL_TRUE
        if typ is int or typ == "int":
            v = int(float(value))
            if v < 0:
                raise ValueError
            return v
        if typ is float or typ == "float":
            v = float(value)
            if v < 0:
                raise ValueError
            return v
    except (TypeError, ValueError):
        problems.append(f"{name.upper()} must be a non-negative number; using the default.")
        return None
    return str(value).strip()


def _service_account(raw: Any, problems: list[str]) -> dict[str, Any]:
    if raw in (None, ""):
        return {}
    if isinstance(raw, Mapping):
        info = {k: raw[k] for k in raw}
    else:
        try:
            info = json.loads(str(raw))
        except ValueError:
            problems.append("GOOGLE_SERVICE_ACCOUNT is not valid JSON; logging to the local CSV instead.")
            return {}
        if not isinstance(info, dict):
            problems.append("GOOGLE_SERVICE_ACCOUNT must be a JSON object; logging to the local CSV instead.")
            return {}
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        problems.append(
            f"GOOGLE_SERVICE_ACCOUNT lacks {', '.join(missing)}; logging to the local CSV instead."
        )
        return {}
    return info


def check_cloudinary_url(url: str) -> str:
    """An error message for a malformed CLOUDINARY_URL, or ''."""
    if not url:
        return ""
    p = urlparse(url)
    if p.scheme != "cloudinary" or not p.hostname or not p.username or not p.password:
        return "CLOUDINARY_URL must look like cloudinary://API_KEY:API_SECRET@CLOUD_NAME; images stay local."
    return ""


def load_settings(secrets: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from secrets (first) and the environment. Never raises."""
    secrets = secrets or {}
    env = os.environ if env is None else env
    problems: list[str] = []
    kwargs: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in ("problems", "google_service_account", "auth_configured"):
            continue
        key = f.name.upper()
        value = secrets.get(key) if key in secrets else env.get(key)
        if key == "DATA_DIR" and value is None:
            value = env.get("FOXPIPE_DATA_DIR")
        if key == "OFFLINE_DELAY" and value is None:
            value = env.get("FOXPIPE_OFFLINE_DELAY")
        if value is None or value == "":
            continue
        coerced = _coerce(f.name, f.type, value, problems)
        if coerced is not None:
            kwargs[f.name] = coerced
    sa_raw = secrets.get("GOOGLE_SERVICE_ACCOUNT") if "GOOGLE_SERVICE_ACCOUNT" in secrets else env.get("GOOGLE_SERVICE_ACCOUNT")
    kwargs["google_service_account"] = _service_account(sa_raw, problems)
    if kwargs["google_service_account"] and not kwargs.get("google_sheet_id"):
        problems.append("GOOGLE_SERVICE_ACCOUNT is set but GOOGLE_SHEET_ID is not; logging to the local CSV.")
    msg = check_cloudinary_url(kwargs.get("cloudinary_url", ""))
    if msg:
        problems.append(msg)
    if kwargs.get("images_per_minute", 5.0) <= 0:
        problems.append("IMAGES_PER_MINUTE must be above 0; using 5.")
        kwargs["images_per_minute"] = 5.0
    if kwargs.get("max_concurrent_images", 10) < 1:
        problems.append("MAX_CONCURRENT_IMAGES must be at least 1; using 10.")
        kwargs["max_concurrent_images"] = 10
    mode = str(kwargs.get("continuity", "fix")).lower()
    if mode not in ("off", "flag", "fix"):
        problems.append("CONTINUITY must be off, flag or fix; using fix.")
        mode = "fix"
    kwargs["continuity"] = mode
    if kwargs.get("continuity_threshold", 70) > 100:
        problems.append("CONTINUITY_THRESHOLD must be 0 to 100; using 70.")
        kwargs["continuity_threshold"] = 70
    if kwargs.get("vision_requests_per_minute", 60.0) <= 0:
        problems.append("VISION_REQUESTS_PER_MINUTE must be above 0; using 60.")
        kwargs["vision_requests_per_minute"] = 60.0
    if (kwargs.get("kling_access_key") is None) != (kwargs.get("kling_secret_key") is None):
        problems.append("Kling needs both KLING_ACCESS_KEY and KLING_SECRET_KEY.")
    return Settings(**kwargs, problems=tuple(problems))
