"""Files a user uploads: the limits of each uploader and the check of a scene image of the
user's own (the last resort for a scene no prompt can get past the content policy). No
Streamlit here; the page passes the uploaded bytes to ``validate_upload``."""

from __future__ import annotations

import io
import logging
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

MB = 1024 * 1024
MAX_IMAGE_UPLOAD_MB = 20  # a scene image of the user's own
MAX_MUSIC_UPLOAD_MB = 50  # background music for the video
# Streamlit's own limit for every upload (server.maxUploadSize in .streamlit/config.toml) is the
# largest of the app's uploaders: nothing bigger can reach the server.
MAX_UPLOAD_MB = max(MAX_IMAGE_UPLOAD_MB, MAX_MUSIC_UPLOAD_MB)

IMAGE_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}
MAX_IMAGE_SIDE = 8192  # pixels
MAX_IMAGE_PIXELS = 40_000_000  # ~ 160 MB decoded as RGBA: beyond that, a decompression bomb


class UploadError(ValueError):
    """An upload the app does not take; the message says why, for the user."""


def validate_upload(data: bytes, max_mb: int = MAX_IMAGE_UPLOAD_MB) -> bytes:
    """A user's scene image (PNG, JPEG or WebP, at most ``max_mb`` MB, at most
    MAX_IMAGE_SIDE px a side) checked by decoding it fully, turned upright (EXIF orientation) and
    re-encoded as a PNG without any metadata (EXIF, GPS, text, ICC). Raises ValueError with a
    message for the user."""
    if not data:
        raise UploadError("The file is empty.")
    if len(data) > max_mb * MB:
        raise UploadError(
            f"The file is {len(data) / MB:.1f} MB; images may be at most {max_mb} MB."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format or ""
                width, height = probe.size
                if fmt not in IMAGE_FORMATS:
                    raise UploadError(
                        f"This is a {fmt or 'unknown'} file; upload a PNG, JPEG or WebP image."
                    )
                _check_size(width, height)
                probe.verify()  # structure and checksums, without decoding the pixels
            with Image.open(io.BytesIO(data)) as im:
                im.load()  # every pixel: a truncated or corrupt file fails here
                upright = ImageOps.exif_transpose(im)
                _check_size(*upright.size)
                mode = (
                    "RGBA"
                    if ("A" in upright.getbands() or "transparency" in upright.info)
                    else "RGB"
                )
                clean = upright.convert(mode)
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(
            f"The image has far too many pixels; at most {MAX_IMAGE_SIDE} pixels a side "
            f"and {MAX_IMAGE_PIXELS // 1_000_000} megapixels."
        ) from None
    except UnidentifiedImageError:
        raise UploadError("This file is not a PNG, JPEG or WebP image.") from None
    except (OSError, SyntaxError, EOFError, ValueError, MemoryError) as e:
        log.info("[UPLOAD] rejected a corrupt image: %s", type(e).__name__)
        raise UploadError(
            "The image is damaged or incomplete; export it again and upload the new file."
        ) from None
    clean.info = {}  # nothing of the original's metadata is written
    out = io.BytesIO()
    clean.save(out, format="PNG", compress_level=3)  # half the time of level 6, no larger
    return out.getvalue()


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise UploadError("The image has no pixels.")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise UploadError(
            f"The image is {width} × {height} pixels; at most {MAX_IMAGE_SIDE} pixels a side "
            f"and {MAX_IMAGE_PIXELS // 1_000_000} megapixels."
        )
