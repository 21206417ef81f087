"""What an image-to-video provider implements, and where clips are kept.

A provider turns one image (and, when its model takes them, the hero's reference sheets)
into one clip in three separate steps, so a clip is never paid for twice:
``submit`` returns the vendor's task id as soon as the vendor gives it (the caller stores
it at once), ``poll`` asks how that task is doing (after a restart too), and
``fetch_result`` asks the vendor again for a fresh download link when the stored one has
expired. ``collect`` downloads a finished clip and refetches an expired link once.
Errors are ``ProviderError`` with ``kind``: ``retryable`` (rate limit, server, timeout),
``policy`` (content refused) or ``fatal`` (bad key, no balance, bad request).
"""

from __future__ import annotations

import base64
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from PIL import Image

from foxpipe.engine.retry import retry_after_seconds
from foxpipe.providers import tls
from foxpipe.providers.base import ProviderError
from foxpipe.providers.localstore import safe_id
from foxpipe.providers.slideshow import cover_fit

log = logging.getLogger(__name__)

MAX_CLIP_BYTES = 300 * 1024 * 1024


@dataclass
class ImageInput:
    """The image a provider receives: a public URL when the image is hosted, else base64."""

    url: str = ""
    b64: str = ""  # raw base64 of a JPEG, no data: prefix
    mime: str = "image/jpeg"

    @property
    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{self.b64}"


@dataclass
class TaskState:
    state: str  # "processing", "succeed" or "failed"
    video_url: str = ""
    message: str = ""


class HttpProvider:
    """A video provider's async HTTP client: the one given (tests), else opened on first use
    with the provider's base URL and timeout, and closed with ``aclose``."""

    _base_url: str = ""
    _timeout: float = 60.0
    _given: httpx.AsyncClient | None = None
    use_references: bool = False  # the model takes reference images and the setting allows them

    @property
    def takes_references(self) -> bool:
        return self.use_references

    _http: httpx.AsyncClient | None = None

    @property
    def _client(self) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self._base_url.rstrip("/"),
                timeout=self._timeout,
                verify=tls.httpx_context(),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()


class ClipMaker(Protocol):
    name: str  # "kling", "hailuo"
    label: str
    model: str
    clip_seconds: float
    cost_per_clip: float  # US$ for one clip from the price table (or the override setting)
    creates_per_minute: float
    max_concurrent: int

    @property
    def takes_references(self) -> bool: ...

    async def submit(
        self,
        image: ImageInput,
        prompt: str,
        external_id: str = "",
        references: list[ImageInput] | None = None,
        aspect_ratio: str = "9:16",
    ) -> str:
        """Start a paid task; returns the task id to store (it names the endpoint to poll)."""
        ...

    async def create(
        self,
        image: ImageInput,
        prompt: str,
        external_id: str = "",
        references: list[ImageInput] | None = None,
        aspect_ratio: str = "9:16",
    ) -> str: ...

    async def poll(self, task_id: str) -> TaskState: ...

    async def status(self, task_id: str) -> TaskState: ...

    async def fetch_result(self, task_id: str) -> str:
        """A fresh download link of a finished task (the vendor is asked again)."""
        ...

    async def download(self, url: str) -> bytes: ...

    async def aclose(self) -> None: ...


EXPIRED_LINK = {"403", "404", "410"}  # what an expired download link answers


async def collect(maker: ClipMaker, task_id: str, url: str) -> tuple[bytes, str]:
    """Download a finished clip; when the link has expired, fetch a fresh one from the task
    once and download that. Returns (bytes, the link that worked)."""
    try:
        return await maker.download(url), url
    except ProviderError as e:
        if e.code not in EXPIRED_LINK:
            raise
        log.info(
            "[VIDEO] %s download link expired (HTTP %s); asking for a fresh one", maker.name, e.code
        )
    fresh = await maker.fetch_result(task_id)
    return await maker.download(fresh), fresh


@dataclass
class StoredClip:
    url: str
    local_path: str
    uploaded: bool = False
    error: str = ""


class ClipStore(Protocol):
    """Where clips and story videos are kept. Local files by default; a hosted store
    (e.g. Cloudinary with resource_type="video") implements the same two methods."""

    name: str

    def save_clip(self, job_id: str, slot_index: int, attempt: int, data: bytes) -> StoredClip: ...

    def video_dir(self, job_id: str) -> Path: ...


class LocalClipStore:
    name = "local"

    def __init__(self, root: Path):
        self.root = Path(root) / "videos"

    def video_dir(self, job_id: str) -> Path:
        d = self.root / safe_id(job_id)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def save_clip(self, job_id: str, slot_index: int, attempt: int, data: bytes) -> StoredClip:
        path = self.video_dir(job_id) / f"clip_{slot_index + 1:02d}_a{attempt}.mp4"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return StoredClip(url=str(path), local_path=str(path))


class HostedClipStore(LocalClipStore):
    """Clips and story videos on disk first, then hosted (Cloudinary), so a restart of a
    platform that wipes its disk loses nothing anyone paid for."""

    name = "hosted"

    def __init__(self, root: Path, host: Any):
        super().__init__(root)
        self.host = host  # has host_file(path, *, story_id, name, tags) -> (url, error)

    def save_clip(self, job_id: str, slot_index: int, attempt: int, data: bytes) -> StoredClip:
        local = super().save_clip(job_id, slot_index, attempt, data)
        url, error = self.host.host_file(
            local.local_path,
            story_id=job_id,
            name=f"clip_{slot_index + 1:02d}_a{attempt}",
            tags=[job_id, "clip"],
        )
        return StoredClip(
            url=url or local.url, local_path=local.local_path, uploaded=bool(url), error=error
        )

    def host_video(self, job_id: str, path: str, name: str = "story") -> tuple[str, str]:
        return self.host.host_file(path, story_id=job_id, name=name, tags=[job_id, "video"])


# ---------------------------------------------------------------- images for providers
_CLOUDINARY_UPLOAD = re.compile(r"^(https?://[^/]*cloudinary\.com/.+?/image/upload/)(.+)$")


def hosted_url(url: str, size: tuple[int, int]) -> str:
    """A hosted Cloudinary image, cover-cropped around the centre to the frame by a URL
    transformation (``c_fill,g_center``): the provider fetches the fitted image."""
    m = _CLOUDINARY_UPLOAD.match(url)
    if not m:
        return url
    w, h = size
    return f"{m.group(1)}c_fill,g_center,w_{w},h_{h}/{m.group(2)}"


def image_input(local_path: str, url: str, uploaded: bool, size: tuple[int, int]) -> ImageInput:
    if uploaded and url.startswith("https://"):
        return ImageInput(url=hosted_url(url, size))
    with Image.open(local_path) as im:
        fitted = cover_fit(im, *size)
    buf = io.BytesIO()
    fitted.save(buf, "JPEG", quality=90)
    return ImageInput(b64=base64.b64encode(buf.getvalue()).decode("ascii"))


# ---------------------------------------------------------------- shared HTTP helpers
def retry_after(resp: httpx.Response) -> float | None:
    return retry_after_seconds(resp.headers)


def transport_error(provider: str, e: Exception) -> ProviderError:
    """``connect``: nothing reached the vendor (safe to send again); ``timeout`` and
    ``network``: the request may have arrived, so a submission may have been accepted."""
    if isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return ProviderError(
            f"Could not reach {provider} ({type(e).__name__}).", "retryable", code="connect"
        )
    if isinstance(e, httpx.TimeoutException):
        return ProviderError(f"{provider} did not answer in time.", "retryable", code="timeout")
    return ProviderError(
        f"Could not reach {provider} ({type(e).__name__}).", "retryable", code="network"
    )


async def download(client: httpx.AsyncClient, provider: str, url: str) -> bytes:
    """Fetch a finished clip (the provider's links are absolute and expire)."""
    try:
        async with client.stream("GET", url, follow_redirects=True) as resp:
            if resp.status_code >= 400:
                kind = (
                    "retryable" if resp.status_code >= 500 or resp.status_code == 429 else "fatal"
                )
                raise ProviderError(
                    f"{provider}'s clip could not be downloaded (HTTP {resp.status_code}).",
                    kind,
                    code=str(resp.status_code),
                )
            chunks, total = [], 0
            async for chunk in resp.aiter_bytes():
                total += len(chunk)
                if total > MAX_CLIP_BYTES:
                    raise ProviderError(f"{provider}'s clip is larger than expected.", "fatal")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as e:
        raise transport_error(provider, e) from e
