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

from foxpipe.safety import redact_any_case

SECRET_FIELDS = (
    "openai_api_key",
    "cloudinary_url",
    "kling_access_key",
    "kling_secret_key",
    "hailuo_api_key",
    "app_password",
    "database_url",
    "tts_api_key",
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
    kling_model: str = "kling-v2-5-turbo"  # see foxpipe/providers/video_models.py
    kling_mode: str = "std"
    hailuo_model: str = (
        "MiniMax-Hailuo-2.3"  # or "MiniMax-H3" (v2 API, hero references, native audio)
    )
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
    # Store and shutdown
    database_url: str = (
        ""  # PostgreSQL (postgresql+psycopg://…); empty: a SQLite file in the data folder
    )
    shutdown_grace_seconds: float = (
        60.0  # on SIGTERM/Ctrl+C, wait this long for requests already sent
    )
    # Local
    data_dir: str = "data"
    offline_delay: float = 0.4  # seconds per embedded image, so progress is visible
    gallery_refresh: float = 1.0  # seconds between gallery refreshes while work runs
    # Narration: the script, the voice providers, synthesis limits and the voice's price
    narration_seconds: float = 60.0  # the whole Short's spoken length the script is sized to
    narration_words_per_second: float = 2.5  # speaking pace used for the per-scene word budget
    narration_style: str = "storyteller"  # storyteller, epic, playful or calm
    openai_voice_model: str = "gpt-realtime-2.1-mini"  # Realtime API model for the narration
    openai_voice: str = "marin"
    voice_timeout: float = 60.0  # seconds one line's synthesis may take
    voice_retries: int = 3  # retries of one line after a retryable failure
    max_concurrent_voice: int = 3  # lines synthesized at once
    voice_prices: str = "gpt-realtime-2.1-mini=20,gpt-realtime-mini=20,gpt-realtime=64"  # US$ per million audio output tokens
    tts_base_url: str = (
        ""  # an OpenAI-compatible /v1/audio/speech endpoint (self-hosted or third party)
    )
    tts_model: str = ""
    tts_voice: str = ""
    tts_api_key: str = ""
    tts_price_per_million_chars: float = 0.0  # US$; 0 means free (self-hosted)
    # Password guessing (foxpipe.access): wrong passwords per sliding minute, per client
    # address and for the whole app (every session together)
    password_failures_per_client: int = 5
    password_failures_overall: int = 20
    # Motion clips: lengths, resolution, hero references, scene image size
    kling_duration: int = 5  # seconds per Kling clip (the model's nearest accepted length is used)
    hailuo_duration: int = 6  # seconds per MiniMax clip
    hailuo_resolution: str = "768P"  # 768P | 1080P (Hailuo 2.3, 6 s only) | 2K (MiniMax-H3)
    video_references: bool = (
        True  # send the approved hero sheet with the frame when the model takes references
    )
    scene_image_size: str = (
        ""  # e.g. "1088x1920"; empty: the video's shape when the image model allows it
    )
    # The finished Short (foxpipe.media): timeline, music, render
    narration_pause_seconds: float = 0.4  # silence after each scene's narration line
    scene_min_seconds: float = 2.0  # length of a scene with no narration line
    short_fps: int = 30
    short_render_workers: int = 2  # scene segments rendered at once
    short_prerender: bool = True  # render each scene's segment as soon as it is final
    # Continuity check (every image compared with the hero's reference)
    continuity: str = "fix"  # off | flag | fix (regenerate once an image below the threshold)
    continuity_threshold: int = 70  # score 0-100 below which an image is off model
    openai_vision_model: str = "gpt-5.4-mini"
    vision_requests_per_minute: float = 60.0
    vision_timeout: float = 60.0  # seconds per check request
    vision_retries: int = 2  # retries of a check after a timeout, 429 or server error
    # The finished Short in the app: narration written and spoken on approval, video size, music
    narration_auto: bool = True  # write and speak the narration as soon as the scenes are approved
    short_size: str = ""  # e.g. "540x960"; empty: 1080x1920 (or 1920x1080 for landscape)
    short_music: str = "builtin"  # the default music: builtin (an ambient bed made here) or none
    daily_narration_budget: int = (
        2000  # paid narration lines (and previews) per day for the whole app
    )
    # Sharing and reviewing together
    gallery_idle_refresh: float = (
        5.0  # seconds between looks at an idle gallery for a teammate's changes
    )
    problems: tuple[str, ...] = ()  # configuration problems, shown in the sidebar

    @property
    def openai_live(self) -> bool:
        return bool(self.openai_api_key)

    @property
    def offline(self) -> bool:
        return not self.openai_live

    @property
    def cloudinary_live(self) -> bool:
        return bool(self.cloudinary_url) and not any(
            p.startswith("CLOUDINARY") for p in self.problems
        )

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
        if self.database_url:
            vals += [urlparse(self.database_url).password or ""]
        return [v for v in vals if v and len(v) >= 6]

    def redact(self, text: str) -> str:
        """The text with every secret removed, in any letter case (an endpoint may echo a
        key upper- or lower-cased)."""
        return redact_any_case(text, self.secret_values())


_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, typ: Any, value: Any, problems: list[str]) -> Any:
    try:
        if typ is bool or typ == "bool":
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in _BOOL_TRUE or word in _BOOL_FALSE:
                return word in _BOOL_TRUE
            problems.append(f"{name.upper()} must be true or false; using the default.")
            return None
        if typ is int or typ == "int":
            v = int(float(value))
            if v < 0:
                raise ValueError
            return v
        if typ is float or typ == "float":
            f = float(value)
            if f < 0:
                raise ValueError
            return f
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
            problems.append(
                "GOOGLE_SERVICE_ACCOUNT is not valid JSON; logging to the local CSV instead."
            )
            return {}
        if not isinstance(info, dict):
            problems.append(
                "GOOGLE_SERVICE_ACCOUNT must be a JSON object; logging to the local CSV instead."
            )
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


def load_settings(
    secrets: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
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
    sa_raw = (
        secrets.get("GOOGLE_SERVICE_ACCOUNT")
        if "GOOGLE_SERVICE_ACCOUNT" in secrets
        else env.get("GOOGLE_SERVICE_ACCOUNT")
    )
    kwargs["google_service_account"] = _service_account(sa_raw, problems)
    if kwargs["google_service_account"] and not kwargs.get("google_sheet_id"):
        problems.append(
            "GOOGLE_SERVICE_ACCOUNT is set but GOOGLE_SHEET_ID is not; logging to the local CSV."
        )
    msg = check_cloudinary_url(kwargs.get("cloudinary_url", ""))
    if msg:
        problems.append(msg)
    if kwargs.get("images_per_minute", 5.0) <= 0:
        problems.append("IMAGES_PER_MINUTE must be above 0; using 5.")
        kwargs["images_per_minute"] = 5.0
    if kwargs.get("max_concurrent_images", 10) < 1:
        problems.append("MAX_CONCURRENT_IMAGES must be at least 1; using 10.")
        kwargs["max_concurrent_images"] = 10
    if not 10 <= kwargs.get("narration_seconds", 60.0) <= 600:
        problems.append("NARRATION_SECONDS must be between 10 and 600; using 60.")
        kwargs["narration_seconds"] = 60.0
    if not 0.5 <= kwargs.get("narration_words_per_second", 2.5) <= 6:
        problems.append("NARRATION_WORDS_PER_SECOND must be between 0.5 and 6; using 2.5.")
        kwargs["narration_words_per_second"] = 2.5
    if kwargs.get("max_concurrent_voice", 3) < 1:
        problems.append("MAX_CONCURRENT_VOICE must be at least 1; using 3.")
        kwargs["max_concurrent_voice"] = 3
    if kwargs.get("voice_timeout", 60.0) <= 0:
        problems.append("VOICE_TIMEOUT must be above 0; using 60.")
        kwargs["voice_timeout"] = 60.0
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
    if kwargs.get("scene_image_size"):
        from foxpipe.domain.frames import SizeError, validate

        try:
            kwargs["scene_image_size"] = validate(
                kwargs["scene_image_size"], kwargs.get("openai_image_model", "gpt-image-2")
            )
        except SizeError as e:
            problems.append(f"SCENE_IMAGE_SIZE: {e} Using the automatic size.")
            kwargs.pop("scene_image_size")
    return Settings(**kwargs, problems=tuple(problems))
