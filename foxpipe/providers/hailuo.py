"""MiniMax image-to-video over its REST API. ``base_resp.status_code`` is checked on every
answer, even HTTP 200.

- v1 (``MiniMax-Hailuo-2.3``): ``POST /v1/video_generation`` with ``first_frame_image``,
  poll ``GET /v1/query/video_generation``, then ``GET /v1/files/retrieve`` for the download
  link (valid about 9 h; retrieving again gives a fresh one).
- v2 (``MiniMax-H3``): ``POST /v2/video_generation`` with a ``content[]`` list: a ``text``
  item, then either a ``first_frame`` image or up to 9 ``reference_image`` items (the two
  modes are exclusive, so with the hero sheets the scene's frame is sent as the first
  reference); poll ``GET /v2/query/video_generation/{task_id}``, whose finished task carries
  ``task.content.url`` (a fresh link on every query). Stored task ids start with ``v2:``.
"""

from __future__ import annotations

from typing import Any

import httpx

from foxpipe.config import Settings
from foxpipe.providers.base import ProviderError
from foxpipe.providers.video_models import caps, hailuo_resolution
from foxpipe.providers.video_prices import clip_price
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

V2_PREFIX = "v2:"
MAX_V2_IMAGES = 9


def split_task_id(stored: str) -> tuple[str, str]:
    """("v1" or "v2", vendor task id) of a stored task id."""
    if stored.startswith(V2_PREFIX):
        return "v2", stored[len(V2_PREFIX) :]
    return "v1", stored


def image_item(img: ImageInput, role: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": img.url or img.data_uri}, "role": role}


def error_for(status: int, body: Any, retry_after_s: float | None = None) -> ProviderError:
    base = body.get("base_resp") if isinstance(body, dict) else None
    code = base.get("status_code") if isinstance(base, dict) else None
    msg = str(base.get("status_msg", "")) if isinstance(base, dict) else ""
    if isinstance(code, int) and code in _CODES:
        kind, text = _CODES[code]
        return ProviderError(text, kind, retry_after_s, code=str(code))
    if status == 429:
        return ProviderError(
            "Hailuo's rate limit was reached; waiting before trying again.",
            "retryable",
            retry_after_s,
            code="429",
        )
    if status >= 500:
        return ProviderError(
            f"Hailuo's server had a problem (HTTP {status}); trying again.",
            "retryable",
            retry_after_s,
            code=str(status),
        )
    if status in (401, 403):
        return ProviderError(
            "Hailuo rejected the key. Check HAILUO_API_KEY.", "fatal", code=str(status)
        )
    return ProviderError(
        f"Hailuo refused the request ({code or status}{': ' + msg[:200] if msg else ''}).",
        "fatal",
        code=str(code or status),
    )


class HailuoClient(HttpProvider):
    name = "hailuo"
    label = "Hailuo (MiniMax)"
    clip_seconds = 6.0
    creates_per_minute = 5.0  # MiniMax allows about 5 video creations per minute
    max_concurrent = 5

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None):
        self.settings = settings
        self.model = settings.hailuo_model.strip() or "MiniMax-Hailuo-2.3"
        self.caps = caps("hailuo", self.model)
        self.duration = self.caps.duration_for(settings.hailuo_duration)
        self.clip_seconds = float(self.duration)
        self.resolution = hailuo_resolution(self.caps, settings.hailuo_resolution, self.duration)
        self.use_references = settings.video_references and self.caps.takes_references
        self.quote = clip_price("hailuo", self.model, self.resolution, self.duration)
        self.cost_per_clip = settings.hailuo_cost_per_clip or self.quote.usd
        self._key = settings.hailuo_api_key
        self._given = client
        self._base_url = settings.hailuo_base_url
        self._timeout = settings.video_http_timeout

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            resp = await self._client.request(
                method, path, headers={"Authorization": f"Bearer {self._key}"}, **kw
            )
        except httpx.HTTPError as e:
            raise transport_error(NAME, e) from e
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            raise error_for(resp.status_code, body, retry_after(resp))
        if not isinstance(body, dict):
            raise ProviderError(
                "Hailuo answered with something that is not JSON.", "retryable", code="bad_body"
            )
        base = body.get("base_resp") or {}
        if base.get("status_code", 0) != 0:
            raise error_for(resp.status_code, body, retry_after(resp))
        return body

    async def submit(
        self,
        image: ImageInput,
        prompt: str,
        external_id: str = "",
        references: list[ImageInput] | None = None,
        aspect_ratio: str = "9:16",
    ) -> str:
        if self.caps.api == "v2":
            return V2_PREFIX + await self._submit_v2(image, prompt, references, aspect_ratio)
        payload = {
            "model": self.model,
            "prompt": prompt[:2000],
            "first_frame_image": image.url or image.data_uri,
            "duration": self.duration,
            "resolution": self.resolution,
        }
        body = await self._call("POST", "/v1/video_generation", json=payload)
        return self._task_id(body)

    async def _submit_v2(
        self, image: ImageInput, prompt: str, references: list[ImageInput] | None, aspect_ratio: str
    ) -> str:
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt[:7000]}]
        refs = list(references or []) if self.use_references else []
        if refs:
            # Reference mode (exclusive with first_frame): the scene's frame leads, the hero follows.
            images = [image, *refs][:MAX_V2_IMAGES]
            content += [image_item(i, "reference_image") for i in images]
            ratio = aspect_ratio
        else:
            content.append(image_item(image, "first_frame"))
            ratio = "adaptive"  # a first-frame clip takes the frame's shape
        payload = {
            "model": self.model,
            "content": content,
            "duration": self.duration,
            "resolution": self.resolution,
            "ratio": ratio,
        }
        body = await self._call("POST", "/v2/video_generation", json=payload)
        return self._task_id(body)

    @staticmethod
    def _task_id(body: dict[str, Any]) -> str:
        task_id = body.get("task_id")
        if not task_id:
            raise ProviderError("Hailuo did not return a task id.", "retryable", code="bad_body")
        return str(task_id)

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

    async def poll(self, task_id: str) -> TaskState:
        api, vendor_id = split_task_id(task_id)
        if api == "v2":
            return await self._poll_v2(vendor_id)
        body = await self._call("GET", "/v1/query/video_generation", params={"task_id": vendor_id})
        st = body.get("status")
        if st == "Success":
            file_id = body.get("file_id")
            if not file_id:
                return TaskState("failed", message="Hailuo finished the task but returned no file.")
            url = await self._retrieve(str(file_id))
            if not url:
                return TaskState("failed", message="Hailuo returned no download link for the clip.")
            return TaskState("succeed", video_url=url)
        if st == "Fail":
            return TaskState("failed", message="Hailuo could not make this clip (the task failed).")
        return TaskState("processing")

    async def _poll_v2(self, vendor_id: str) -> TaskState:
        body = await self._call("GET", f"/v2/query/video_generation/{vendor_id}")
        found = body.get("task")
        task: dict[str, Any] = found if isinstance(found, dict) else {}
        st = str(task.get("status", ""))
        if st == "succeeded":
            url = (
                (task.get("content") or {}).get("url", "")
                if isinstance(task.get("content"), dict)
                else ""
            )
            if not url:
                return TaskState(
                    "failed", message="MiniMax finished the task but returned no video."
                )
            return TaskState("succeed", video_url=url)
        if st in ("failed", "cancelled"):
            why = task.get("error") or task.get("status_msg") or st
            return TaskState("failed", message=f"MiniMax could not make this clip: {why}.")
        return TaskState("processing")

    async def _retrieve(self, file_id: str) -> str:
        info = await self._call("GET", "/v1/files/retrieve", params={"file_id": file_id})
        return str((info.get("file") or {}).get("download_url", ""))

    async def fetch_result(self, task_id: str) -> str:
        """A fresh link: v1 asks files/retrieve again, v2 queries the task again."""
        state = await self.poll(task_id)
        if state.state != "succeed":
            raise ProviderError(
                state.message or "Hailuo's clip is not finished yet.",
                "fatal" if state.state == "failed" else "retryable",
                code="no_result",
            )
        return state.video_url

    async def download(self, url: str) -> bytes:
        return await download(self._client, NAME, url)
