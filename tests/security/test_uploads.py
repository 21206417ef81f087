"""Uploads: Streamlit's limit is what the app's own uploaders need, and a scene image of the
user's own is checked, re-encoded to PNG and stripped of metadata before it is used."""

from __future__ import annotations

import io
import struct
import tomllib
import zlib

import pytest
from PIL import Image, PngImagePlugin

from foxpipe.uploads import MAX_IMAGE_UPLOAD_MB, MAX_UPLOAD_MB, MB, validate_upload
from tests.conftest import ROOT


def test_streamlit_upload_limit_is_what_the_uploaders_need():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB == 50
    assert MAX_IMAGE_UPLOAD_MB == 20


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB", **save) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 120, 40) if mode == "RGB" else 0).save(buf, format=fmt, **save)
    return buf.getvalue()


def chunk(tag: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + tag
        + data
        + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size, with almost no data (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_good_images_come_back_as_png(fmt):
    out = validate_upload(image_bytes(fmt))
    with Image.open(io.BytesIO(out)) as im:
        assert im.format == "PNG" and im.size == (64, 48)


def test_metadata_is_stripped():
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude
    jpeg = image_bytes("JPEG", exif=exif.tobytes())
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "secret-author-name")
    png = image_bytes("PNG", pnginfo=info)
    for data, secret in ((jpeg, b"SecretCam"), (png, b"secret-author-name")):
        assert secret in data
        out = validate_upload(data)
        assert secret not in out
        with Image.open(io.BytesIO(out)) as im:
            assert not im.info.get("exif") and "Author" not in im.info and not im.getexif()


def test_exif_rotation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°
    out = validate_upload(image_bytes("JPEG", (64, 48), exif=exif.tobytes()))
    with Image.open(io.BytesIO(out)) as im:
        assert im.size == (48, 64)


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "empty"),
        (b"just some text, not an image\n" * 10, "not a PNG, JPEG or WebP"),
        (image_bytes("PNG", (400, 300))[:-400], "damaged or incomplete"),
        (image_bytes("GIF", mode="P"), "GIF file"),
        (png_header_only(100_000, 100_000), "megapixels"),
        (png_header_only(20_000, 100), "20000 × 100 pixels"),
        (png_header_only(8_000, 8_000), "megapixels"),
    ],
)
def test_bad_files_get_a_clear_message(data, words):
    with pytest.raises(ValueError, match=words):
        validate_upload(data)


def test_real_decompression_bomb_is_refused():
    buf = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buf, format="PNG")  # 64 megapixels in a few kB
    assert len(buf.getvalue()) < MB
    with pytest.raises(ValueError, match="megapixels"):
        validate_upload(buf.getvalue())


def test_file_over_20_mb_is_refused_before_decoding():
    data = image_bytes("PNG") + b"\0" * (21 * MB)
    with pytest.raises(ValueError, match="at most 20 MB"):
        validate_upload(data)
