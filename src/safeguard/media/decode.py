"""Sniff and decode uploaded media safely.

The type is read from the bytes (magic numbers), never trusted from the filename or the client's
Content-Type. Images are checked against a pixel limit *before* pixel data is decoded (the header
gives the size), which is the decompression-bomb guard; truncated and corrupt files raise
:class:`~safeguard.errors.MediaError` with a stable code instead of a stack trace.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageFile, UnidentifiedImageError

from safeguard.errors import MediaError, UnsupportedMedia

# Pillow's own bomb check is replaced by ours (configurable, and raised before decoding).
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_TYPES = {
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/bmp",
    "image/tiff",
}
VIDEO_TYPES = {"video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/x-msvideo"}


def sniff_media_type(data: bytes) -> str | None:
    """Return the MIME type the bytes really are, or None when unrecognised."""
    h = data[:32]
    if h.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return "image/webp"
    if h[:4] == b"RIFF" and h[8:12] == b"AVI ":
        return "video/x-msvideo"
    if h[:2] == b"BM":
        return "image/bmp"
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if h[4:8] == b"ftyp":
        brand = h[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
            return "image/heif"
        return "video/mp4"
    if h[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm" if b"webm" in data[:64] else "video/x-matroska"
    return None


def decode_image(data: bytes, *, max_pixels: int, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode image bytes into an RGB or L Pillow image, or raise MediaError.

    ``draft`` asks the JPEG decoder for a reduced size (DCT scaling) no smaller than the given box;
    it is ignored for other formats.
    """
    if not data:
        raise MediaError("empty file", code="empty_media")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if width * height > max_pixels:
                raise MediaError(
                    f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
                    code="too_many_pixels",
                    status=413,
                    details={"width": width, "height": height, "max_pixels": max_pixels},
                )
            if draft is not None and im.format == "JPEG":
                im.draft("RGB", draft)
            im.load()
    except MediaError:
        raise
    except UnidentifiedImageError as exc:
        raise UnsupportedMedia("not an image format Safeguard can decode") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as exc:
        raise MediaError(f"image could not be decoded: {exc}", code="corrupt_media") from exc
    out: Image.Image = im
    if out.mode not in ("RGB", "L"):
        try:
            out = out.convert("RGB")
        except (OSError, ValueError) as exc:
            raise MediaError(f"image could not be converted: {exc}", code="corrupt_media") from exc
    return out


@dataclass
class Media:
    """Uploaded bytes plus lazily decoded forms, shared by every signal type computed from them."""

    data: bytes
    media_type: str | None
    max_pixels: int = 100_000_000
    _image: Image.Image | None = field(default=None, repr=False)

    @classmethod
    def from_bytes(cls, data: bytes, *, max_pixels: int = 100_000_000, declared_type: str | None = None) -> Media:
        if not data:
            raise MediaError("empty file", code="empty_media")
        sniffed = sniff_media_type(data)
        if sniffed is None:
            raise UnsupportedMedia(
                "unsupported or unrecognised media type" + (f" (declared {declared_type!r})" if declared_type else ""),
                details={"supported": sorted(IMAGE_TYPES | VIDEO_TYPES)},
            )
        return cls(data=data, media_type=sniffed, max_pixels=max_pixels)

    @property
    def is_image(self) -> bool:
        return self.media_type in IMAGE_TYPES

    @property
    def is_video(self) -> bool:
        return self.media_type in VIDEO_TYPES

    def image(self) -> Image.Image:
        if self._image is None:
            if not self.is_image:
                raise UnsupportedMedia(f"{self.media_type} is not an image")
            self._image = decode_image(self.data, max_pixels=self.max_pixels)
        return self._image
