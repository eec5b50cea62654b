from __future__ import annotations

import io

import pytest
from PIL import Image

from safeguard.errors import MediaError, UnsupportedMedia
from safeguard.media import Media, decode_image, sniff_media_type
from tests.media_factory import encode, image_bytes, make_image


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_formats_decode(fmt: str, mime: str) -> None:
    data = image_bytes(1, fmt)
    assert sniff_media_type(data) == mime
    im = Media.from_bytes(data).image()
    assert im.size == (320, 240)
    assert im.mode in ("RGB", "L")


def test_rgba_and_palette_images_become_rgb() -> None:
    im = make_image(2).convert("RGBA")
    assert decode_image(encode(im, "PNG"), max_pixels=10**8).mode == "RGB"


def test_empty_file() -> None:
    with pytest.raises(MediaError) as e:
        Media.from_bytes(b"")
    assert e.value.code == "empty_media"


def test_unsupported_type() -> None:
    with pytest.raises(UnsupportedMedia) as e:
        Media.from_bytes(b"%PDF-1.7 this is not an image")
    assert e.value.status == 415


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_truncated_file(fmt: str) -> None:
    data = image_bytes(3, fmt)
    with pytest.raises(MediaError) as e:
        Media.from_bytes(data[: len(data) // 2]).image()
    assert e.value.code == "corrupt_media"


def test_corrupt_body_with_valid_magic() -> None:
    with pytest.raises(MediaError) as e:
        Media.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100).image()
    assert e.value.code in ("corrupt_media", "unsupported_media_type")


def test_decompression_bomb_refused_before_decoding() -> None:
    # A 20000 x 20000 PNG of one colour compresses to a few hundred KB but would decode to 1.2 GB.
    buf = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buf, "PNG", optimize=False, compress_level=9)
    data = buf.getvalue()
    assert len(data) < 2_000_000
    with pytest.raises(MediaError) as e:
        Media.from_bytes(data, max_pixels=50_000_000).image()
    assert e.value.code == "too_many_pixels"
    assert e.value.status == 413
