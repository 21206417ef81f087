"""Kling image-to-video over its REST API (no SDK): a JWT (HS256) signed with the secret
key. A first-frame clip is ``POST /v1/videos/image2video`` (``image``); a model that takes
subject references (kling-v3-omni, kling-video-o1) gets ``POST /v1/videos/multi-image2video``
with ``image_list`` = the scene's frame then the hero sheets. Poll
``GET /v1/videos/{endpoint}/{task_id}``; the result is ``task_result.videos[0].url``, and
querying the task again gives a fresh link. Stored task ids name their endpoint
(``multi-image2video:<id>``; a bare id is an image2video task)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt

from foxpipe.config import Settings
from foxpipe.providers.base import ProviderError
from foxpipe.providers.video_models import caps
from foxpipe.providers.video_prices import clip_price
from foxpipe.providers.videobase import (
    HttpProvider,
    ImageInput,
    TaskState,
    download,
    retry_after,
    transport_error,
)

NAME = "Kling"

# Kling's business codes -> (kind, what the user reads).
_CODES: dict[int, tuple[str, str]] = {
    1000: (
        "fatal",
        "Kling rejected the keys (authentication failed). Check KLING_ACCESS_KEY and KLING_SECRET_KEY.",
    ),
    1001: (
        "fatal",
        "Kling received no authorization. Check KLING_ACCESS_KEY and KLING_SECRET_KEY.",
    ),
    1002: (
        "fatal",
        "Kling rejected the keys (invalid token). Check KLING_ACCESS_KEY and KLING_SECRET_KEY.",
    ),
    1003: ("retryable", "Kling's token was not valid yet (clock difference); trying again."),
    1004: ("retryable", "Kling's token had expired; trying again with a new one."),
    1100: ("fatal", "The Kling account has a problem; check it in Kling's console."),
    1101: ("fatal", "The Kling account is in arrears (insufficient balance). Top it up and retry."),
    1102: ("fatal", "The Kling resource package is used up or expired (insufficient balance)."),
    1103: ("fatal", "This Kling account has no access to that model or feature."),
    1200: ("fatal", "Kling refused the request parameters."),
    1201: ("fatal", "Kling refused the request parameters."),
    1202: ("fatal", "Kling refused the request method."),
    1203: (
        "fatal",
        "Kling has no such task or model (the task may have expired, or the model is wrong: check KLING_MODEL).",
    ),
    1300: ("policy", "Kling refused this scene under its platform policy (content policy)."),
    1301: ("policy", "Kling's content safety check refused this image or prompt (content policy)."),
    1302: ("retryable", "Kling's rate limit was reached; waiting before trying again."),
    1303: (
        "retryable",
        "Kling's limit on tasks running at once was reached; waiting before trying again.",
    ),
    1304: ("fatal", "Kling refused this server's IP address (IP allow-list)."),
}

IMAGE2VIDEO = "image2video"
MULTI = "multi-image2video"


def split_task_id(stored: str) -> tuple[str, str]:
    """(endpoint, vendor task id) of a stored task id."""
    route, sep, rest = stored.partition(":")
    if sep and route in (IMAGE2VIDEO, MULTI) and rest:
        return route, rest
    return IMAGE2VIDEO, stored


def make_jwt(access_key: str, secret_key: str, now: float | None = None) -> str:
    """The token Kling documents: iss = access key, valid 30 min, from 5 s ago."""
    now = int(time.time() if now is None else now)
    return jwt.encode(
        {"iss": access_key, "exp": now + 1800, "nbf": now - 5},
        secret_key,
        algorithm="HS256",
        headers={"alg": "HS256", "typ": "JWT"},
    )


def error_for(status: int, body: Any, retry_after_s: float | None = None) -> ProviderError:
    code = body.get("code") if isinstance(body, dict) else None
    msg = str(body.get("message", "")) if isinstance(body, dict) else ""
    if isinstance(code, int) and code in _CODES:
        kind, text = _CODES[code]
        return ProviderError(text, kind, retry_after_s, code=str(code))
    if isinstance(code, int) and code >= 5000 or status >= 500:
        return ProviderError(
            f"Kling's server had a problem ({code or status}); trying again.",
            "retryable",
            retry_after_s,
            code=str(code or status),
        )
    if status == 429:
        return ProviderError(
            "Kling's rate limit was reached; waiting before trying again.",
            "retryable",
            retry_after_s,
            code="429",
        )
    if status in (401, 403):
        return ProviderError(
            "Kling rejected the keys. Check KLING_ACCESS_KEY and KLING_SECRET_KEY.",
            "fatal",
            code=str(status),
        )
    return ProviderError(
        f"Kling refused the request ({code or status}{': ' + msg[:200] if msg else ''}).",
        "fatal",
        code=str(code or status),
    )


class KlingClient(HttpProvider):
    name = "kling"
    label = "Kling"
    clip_seconds = 5.0
    creates_per_minute = 10.0
    max_concurrent = 3  # Kling limits tasks running at once per resource package

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None):
        self.settings = settings
        self.access_key = settings.kling_access_key
        self.secret_key = settings.kling_secret_key
        self.model = settings.kling_model.strip() or "kling-v2-5-turbo"
        self.caps = caps("kling", self.model)
        self.mode = settings.kling_mode if settings.kling_mode in ("std", "pro") else "std"
        self.duration = self.caps.duration_for(settings.kling_duration)
        self.clip_seconds = float(self.duration)
        self.use_references = settings.video_references and self.caps.takes_references
        self.quote = clip_price("kling", self.model, self.mode, self.duration)
        self.cost_per_clip = settings.kling_cost_per_clip or self.quote.usd
        self._given = client
        self._base_url = settings.kling_base_url
        self._timeout = settings.video_http_timeout

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_jwt(self.access_key, self.secret_key)}"}

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            resp = await self._client.request(method, path, headers=self._headers(), **kw)
        except httpx.HTTPError as e:
            raise transport_error(NAME, e) from e
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400 or not isinstance(body, dict) or body.get("code") != 0:
            if resp.status_code < 400 and not isinstance(body, dict):
                raise ProviderError(
                    "Kling answered with something that is not JSON.", "retryable", code="bad_body"
                )
            raise error_for(resp.status_code, body, retry_after(resp))
        data = body.get("data")
        if not isinstance(data, dict):
            raise ProviderError("Kling's answer lacked its data.", "retryable", code="bad_body")
        return data

    async def submit(
        self,
        image: ImageInput,
        prompt: str,
        external_id: str = "",
        references: list[ImageInput] | None = None,
        aspect_ratio: str = "9:16",
    ) -> str:
        payload: dict[str, Any] = {
            "model_name": self.model,
            "prompt": prompt[:2500],
            "mode": self.mode,
            "duration": str(self.duration),
        }
        refs = list(references or []) if self.use_references else []
        if refs:
            # The scene's frame leads the list; the hero sheets follow, within the model's limit.
            images = [image, *refs][: self.caps.max_references]
            payload["image_list"] = [{"image": i.url or i.b64} for i in images]
            payload["aspect_ratio"] = aspect_ratio
            route = MULTI
        else:
            payload["image"] = image.url or image.b64  # Kling takes base64 without the data: prefix
            route = IMAGE2VIDEO
        if self.caps.native_audio:
            payload["sound"] = "off"  # the story's narration is the soundtrack; sound costs more
        if external_id:
            payload["external_task_id"] = external_id
        data = await self._call("POST", f"/v1/videos/{route}", json=payload)
        task_id = data.get("task_id")
        if not task_id:
            raise ProviderError("Kling did not return a task id.", "retryable", code="bad_body")
        return str(task_id) if route == IMAGE2VIDEO else f"{route}:{task_id}"

    async def create(
        self,
        image: ImageInput,
        prompt: str,
        external_id: str = "",
        references: list[ImageInput] | None = None,
        aspect_ratio: str = "9:16",
    ) -> str:
        return await self.submit(image, prompt, external_id, references, aspect_ratio)

    async def status(self, task_id: str) -> TaskState:
        return await self.poll(task_id)

    async def fetch_result(self, task_id: str) -> str:
        """Query the task again: Kling answers a finished task with a fresh link."""
        state = await self.poll(task_id)
        if state.state != "succeed":
            raise ProviderError(
                state.message or "Kling's clip is not finished yet.",
                "fatal" if state.state == "failed" else "retryable",
                code="no_result",
            )
        return state.video_url

    async def poll(self, task_id: str) -> TaskState:
        route, vendor_id = split_task_id(task_id)
        data = await self._call("GET", f"/v1/videos/{route}/{vendor_id}")
        st = data.get("task_status")
        if st == "succeed":
            videos = (data.get("task_result") or {}).get("videos") or []
            url = videos[0].get("url", "") if videos and isinstance(videos[0], dict) else ""
            if not url:
                return TaskState("failed", message="Kling finished the task but returned no video.")
            return TaskState("succeed", video_url=url)
        if st == "failed":
            return TaskState(
                "failed",
                message=f"Kling could not make this clip: {data.get('task_status_msg') or 'no reason given'}.",
            )
        return TaskState("processing")

    async def download(self, url: str) -> bytes:
        return await download(self._client, NAME, url)
