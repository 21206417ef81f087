"""Image hosting on Cloudinary, through the ``cloudinary`` SDK.

Every image is first saved on the local disk (the copy that is never thrown away), then
uploaded into ``foxpipe/<story id>/scene_NN`` (later versions ``scene_NN_vK``), tagged with
the story id. The SDK is synchronous: callers run ``save``/``reupload`` off the event loop.
Uploads have a timeout and up to ``retries`` retries with backoff on 420/429/5xx and network
errors; 400/401/403/404 are not retried. A failed upload returns the local copy with
``error`` set, so the gallery can offer "Retry upload".
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import cloudinary
import cloudinary.exceptions
import cloudinary.uploader

from foxpipe.engine.retry import Backoff
from foxpipe.providers.base import Capability, StoredImage
from foxpipe.providers.localstore import LocalStore, safe_id

log = logging.getLogger(__name__)

# Errors worth another try: the SDK raises GeneralError for 500/503, RateLimited for
# 420/429, and plain Error for network failures and unparseable (e.g. 502 HTML) replies.
_PERMANENT = (
    cloudinary.exceptions.BadRequest,
    cloudinary.exceptions.AuthorizationRequired,
    cloudinary.exceptions.NotAllowed,
    cloudinary.exceptions.NotFound,
    cloudinary.exceptions.AlreadyExists,
)


class UploadError(Exception):
    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


_POOL_READY = False


def _widen_connection_pool(size: int = 10) -> None:
    """The SDK shares one urllib3 pool of a single connection; concurrent uploads would open
    and drop a connection each time. Give it room for the worker's concurrent uploads."""
    global _POOL_READY
    if _POOL_READY:
        return
    from cloudinary import utils

    cloudinary.uploader._http = utils.get_http_connector(
        cloudinary.config(), {**cloudinary.CERT_KWARGS, "maxsize": size}
    )
    _POOL_READY = True


def parse_cloudinary_url(url: str) -> dict[str, Any]:
    """The SDK's own reading of CLOUDINARY_URL (credentials, cloud, query parameters as
    config keys such as ``upload_prefix``), as per-call options: no global SDK state."""
    p = urlparse(url)
    if p.scheme != "cloudinary" or not p.hostname or not p.username or not p.password:
        raise ValueError("CLOUDINARY_URL must look like cloudinary://API_KEY:API_SECRET@CLOUD_NAME")
    opts: dict[str, Any] = {
        "cloud_name": p.hostname,
        "api_key": p.username,
        "api_secret": p.password,
    }
    for k, v in parse_qs(p.query).items():
        opts[k] = v[0]
    return opts


def public_name(slot_index: int, version: int) -> str:
    base = f"scene_{slot_index + 1:02d}"
    return base if version <= 1 else f"{base}_v{version}"


class CloudinaryStore:
    name = "cloudinary"
    capabilities = frozenset({Capability.HOSTS_MEDIA, Capability.REUPLOAD})

    def __init__(
        self,
        url: str,
        root: Path,
        *,
        preset: str = "",
        timeout: float = 30.0,
        retries: int = 3,
        backoff_base: float = 1.0,
        backoff_cap: float = 8.0,
        redact: Callable[[str], str] = lambda s: s,
    ):
        self.local = LocalStore(root)
        self.options = parse_cloudinary_url(url)
        self.preset = preset
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.redact = redact
        self.problem = ""  # a credentials/config problem seen on the last upload, for the sidebar
        _widen_connection_pool()

    # ------------------------------------------------------------------ the SDK call
    def _call(
        self,
        data: bytes,
        folder: str,
        public_id: str,
        tags: list[str],
        resource_type: str = "image",
        ext: str = "png",
    ) -> dict[str, Any]:
        opts = dict(
            self.options,
            folder=folder,
            public_id=public_id,
            tags=tags,
            resource_type=resource_type,
            timeout=self.timeout,
            filename=f"{public_id}.{ext}",
        )
        if self.preset:
            return cloudinary.uploader.unsigned_upload(data, self.preset, **opts)
        # Never replace an asset silently: a name already taken comes back as "existing".
        return cloudinary.uploader.upload(data, overwrite=False, unique_filename=False, **opts)

    def _call_with_retries(
        self,
        data: bytes,
        folder: str,
        public_id: str,
        tags: list[str],
        resource_type: str = "image",
        ext: str = "png",
    ) -> dict[str, Any]:
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._call(data, folder, public_id, tags, resource_type, ext)
            except _PERMANENT as e:
                raise UploadError(
                    f"{type(e).__name__}: {self.redact(str(e))}", permanent=True
                ) from e
            except ValueError as e:  # the SDK's "Must supply ..." configuration errors
                raise UploadError(self.redact(str(e)), permanent=True) from e
            except cloudinary.exceptions.Error as e:
                text = str(e)
                if "timed out" in text.lower():
                    message = f"no answer within {self.timeout:g} s"
                else:
                    message = f"{type(e).__name__}: {self.redact(text)}"[:300]
            except OSError as e:
                message = f"network error ({type(e).__name__})"
            log.info("[UPLOAD] %s attempt %d/%d failed: %s", public_id, attempt, attempts, message)
            if attempt < attempts:
                time.sleep(Backoff(self.backoff_base, self.backoff_cap).delay(attempt))
        raise UploadError(f"Gave up after {attempts} attempts: {message}", permanent=False)

    def upload(
        self,
        data: bytes,
        *,
        story_id: str,
        job_id: str,
        slot_index: int,
        version: int,
        tags: list[str],
    ) -> dict[str, Any]:
        """Upload with retries; the Cloudinary response. Raises UploadError."""
        folder = f"foxpipe/{story_id}"
        name = public_name(slot_index, version)
        etag = hashlib.md5(data).hexdigest()  # noqa: S324 - Cloudinary's etag is the MD5 of the bytes
        for candidate in (name, f"{name}_{job_id[:8]}"):
            result = self._call_with_retries(data, folder, candidate, tags)
            # "existing" with other bytes: another job of this story took the name. Use
            # another name; never overwrite. Same bytes: an earlier attempt went through.
            if result.get("existing") and result.get("etag") and result["etag"] != etag:
                log.info(
                    "[UPLOAD] %s/%s is taken by another image; using a new name", folder, candidate
                )
                continue
            return result
        raise UploadError(f"The name {folder}/{name} is taken by other images.", permanent=True)

    # ------------------------------------------------------------------ ImageStore
    def save(
        self, job_id: str, slot_index: int, version: int, data: bytes, *, tags: list[str]
    ) -> StoredImage:
        stored = self.local.save(job_id, slot_index, version, data, tags=tags)
        return self._upload_stored(stored, data, job_id, slot_index, version, tags)

    def reupload(
        self, job_id: str, slot_index: int, version: int, local_path: str, *, tags: list[str]
    ) -> StoredImage:
        """Upload an image kept locally after a failed upload."""
        path = Path(local_path)
        data = path.read_bytes()
        thumb = self.local.path_for(job_id, slot_index, version, "thumb.jpg")
        stored = StoredImage(
            url=str(path), local_path=str(path), thumb_path=str(thumb) if thumb.exists() else ""
        )
        return self._upload_stored(stored, data, job_id, slot_index, version, tags)

    def _upload_stored(
        self,
        stored: StoredImage,
        data: bytes,
        job_id: str,
        slot_index: int,
        version: int,
        tags: list[str],
    ) -> StoredImage:
        story_id = tags[0] if tags else job_id
        try:
            safe_id(story_id)
        except ValueError:
            story_id = job_id
        t0 = time.monotonic()
        try:
            result = self.upload(
                data,
                story_id=story_id,
                job_id=job_id,
                slot_index=slot_index,
                version=version,
                tags=tags,
            )
        except UploadError as e:
            log.warning(
                "[UPLOAD] job %s scene %d v%d kept locally: %s",
                job_id[:6],
                slot_index + 1,
                version,
                e.message,
            )
            if e.permanent and ("AuthorizationRequired" in e.message or "NotAllowed" in e.message):
                self.problem = (
                    f"Cloudinary refused the upload ({e.message[:120]}); images stay local."
                )
            stored.uploaded = False
            stored.error = e.message
            return stored
        url = result.get("secure_url") or result.get("url") or ""
        if not url:
            stored.error = "Cloudinary's reply had no URL."
            return stored
        self.problem = ""
        log.info(
            "[UPLOAD] job %s scene %d v%d uploaded in %.1fs as %s",
            job_id[:6],
            slot_index + 1,
            version,
            time.monotonic() - t0,
            result.get("public_id", "?"),
        )
        return StoredImage(
            url=url,
            local_path=stored.local_path,
            thumb_path=stored.thumb_path,
            uploaded=True,
            error="",
        )

    # ------------------------------------------------------------------ other media
    def host_file(
        self, path: str | Path, *, story_id: str, name: str, tags: list[str]
    ) -> tuple[str, str]:
        """Upload a clip, a story video (``resource_type="video"``) or another file (``"raw"``:
        subtitles, narration audio goes up as video, which Cloudinary uses for audio too),
        kept locally first; (hosted URL, '') or ('', why it stayed local). Never raises."""
        path = Path(path)
        ext = path.suffix.lstrip(".").lower() or "bin"
        resource_type = (
            "video" if ext in ("mp4", "mov", "webm", "wav", "mp3", "m4a", "aac", "ogg") else "raw"
        )
        try:
            safe_id(story_id)
        except ValueError:
            story_id = "story"
        try:
            data = path.read_bytes()
            result = self._call_with_retries(
                data, f"foxpipe/{story_id}", name, tags, resource_type, ext
            )
        except OSError as e:
            return "", f"The local copy could not be read ({type(e).__name__})."
        except UploadError as e:
            log.warning("[UPLOAD] %s kept locally: %s", path.name, e.message)
            return "", e.message
        url = result.get("secure_url") or result.get("url") or ""
        log.info("[UPLOAD] %s hosted as %s", path.name, result.get("public_id", "?"))
        return (url, "") if url else ("", "Cloudinary's reply had no URL.")


def thumbnail_url(url: str, width: int = 360) -> str:
    """A Cloudinary delivery URL scaled down for the gallery (the original stays as is)."""
    marker = "/image/upload/"
    if marker not in url:
        return url
    head, tail = url.split(marker, 1)
    return f"{head}{marker}c_scale,w_{width}/{tail}"
