"""MiniMax Hailuo image-to-video over its REST API: ``POST /v1/video_generation``, poll
``GET /v1/query/video_generation``, then ``GET /v1/files/retrieve`` for the download
link. ``base_resp.status_code`` is checked on every answer, even HTTP 200."""

from __future__ import annotations

from typing import Any

import httpx

from foxpipe.config import Settings
from foxpipe.providers.base import ProviderError
from foxpipe.providers.videobase import (
    HttpProvider,
    ImageInput,
    TaskState,
    download,
    retry_after,
    transport_error,
)

NAME = "Hailuo"

_CODES: dict[int, tuple[str, str]] = {
    1000: ("retryable", "Hailuo had an unknown error; trying again."),
    1001: ("retryable", "Hailuo timed out; trying again."),
    1002: ("retryable", "Hailuo's rate limit was reached; waiting before trying again."),
    1004: ("fatal", "Hailuo rejected the key (authentication failed). Check HAILUO_API_KEY."),
    1008: ("fatal", "The Hailuo account has insufficient balance. Top it up and retry."),
    1013: ("retryable", "Hailuo had an internal error; trying again."),
    1026: ("policy", "Hailuo's content check refused this scene's prompt (sensitive content)."),
    1027: ("policy", "Hailuo's content check refused the generated clip (sensitive content)."),
    2013: ("fatal", "Hailuo refused the request parameters."),
    2049: ("fatal", "Hailuo rejected the key (invalid API key). Check HAILUO_API_KEY."),
}

COST_PER_CLIP = 0.28  # approximate US$ for a 6-s 768P clip; a setting overrides


def error_for(status: int, body: Any, retry_after_s: float | None = None) -> ProviderError:
    base = body.get("base_resp") if isinstance(body, dict) else None
    code = base.get("status_code") if isinstance(base, dict) else None
    msg = str(base.get("status_msg", "")) if isinstance(base, dict) else ""
    if isinstance(code, int) and code in _CODES:
        kind, text = _CODES[code]
        return ProviderError(text, kind, retry_after_s, code=str(code))
    if status == 429:
        return ProviderError("Hailuo's rate limit was reached; waiting before trying again.", "retryable",
                             retry_after_s, code="429")
    if status >= 500:
        return ProviderError(f"Hailuo's server had a problem (HTTP {status}); trying again.", "retryable",
                             retry_after_s, code=str(status))
    if status in (401, 403):
        return ProviderError("Hailuo rejected the key. Check HAILUO_API_KEY.", "fatal", code=str(status))
    return ProviderError(f"Hailuo refused the request ({code or status}{': ' + msg[:200] if msg else ''}).",
                         "fatal", code=str(code or status))


class HailuoClient(HttpProvider):
    name = "hailuo"
    label = "Hailuo (MiniMax)"
    clip_seconds = 6.0
    creates_per_minute = 5.0  # MiniMax allows about 5 video creations per minute
    max_concurrent = 5

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None):
        self.settings = settings
        self.model = settings.hailuo_model
        self.cost_per_clip = settings.hailuo_cost_per_clip or COST_PER_CLIP
        self._key = settings.hailuo_api_key
        self._given = client
        self._base_url = settings.hailuo_base_url
        self._timeout = settings.video_http_timeout

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            resp = await self._client.request(method, path, headers={"Authorization": f"Bearer {self._key}"}, **kw)
        except httpx.HTTPError as e:
            raise transport_error(NAME, e) from e
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            raise error_for(resp.status_code, body, retry_after(resp))
        if not isinstance(body, dict):
            raise ProviderError("Hailuo answered with something that is not JSON.", "retryable", code="bad_body")
        base = body.get("base_resp") or {}
        if base.get("status_code", 0) != 0:
            raise error_for(resp.status_code, body, retry_after(resp))
        return body

    async def create(self, image: ImageInput, prompt: str, external_id: str = "") -> str:
        payload = {
            "model": self.model,
            "prompt": prompt[:2000],
            "first_frame_image": image.url or image.data_uri,
            "duration": 6,
            "resolution": "768P",
        }
        body = await self._call("POST", "/v1/video_generation", json=payload)
        task_id = body.get("task_id")
        if not task_id:
            raise ProviderError("Hailuo did not return a task id.", "retryable", code="bad_body")
        return str(task_id)

    async def status(self, task_id: str) -> TaskState:
        body = await self._call("GET", "/v1/query/video_generation", params={"task_id": task_id})
        st = body.get("status")
        if st == "Success":
            file_id = body.get("file_id")
            if not file_id:
                return TaskState("failed", message="Hailuo finished the task but returned no file.")
            info = await self._call("GET", "/v1/files/retrieve", params={"file_id": file_id})
            url = (info.get("file") or {}).get("download_url", "")
            if not url:
                return TaskState("failed", message="Hailuo returned no download link for the clip.")
            return TaskState("succeed", video_url=url)
        if st == "Fail":
            return TaskState("failed", message="Hailuo could not make this clip (the task failed).")
        return TaskState("processing")

    async def download(self, url: str) -> bytes:
        return await download(self._client, NAME, url)
