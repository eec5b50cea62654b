"""Sniff and decode uploaded media safely.

The type is read from the bytes (magic numbers), never trusted from the filename or the client's
Content-Type. Images are checked against a pixel limit *before* pixel data is decoded (the header
gives the size), which is the decompression-bomb guard; truncated and corrupt files raise
:class:`~safeguard.errors.MediaError` with a stable code instead of a stack trace.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from safeguard.errors import MediaError, UnsupportedMedia
from safeguard.media.formats import open_image, sniff_isobmff_image

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
    "image/avif",  # AVIF, HEIC and generic HEIF: media/formats.py
    "image/heic",
    "image/heif",
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
        image = sniff_isobmff_image(data)  # AVIF, HEIC, generic HEIF: by brand, then payload
        if image is not None:
            return image
        if h[8:12] == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    if h[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm" if b"webm" in data[:64] else "video/x-matroska"
    return None


@dataclass(frozen=True)
class LumaPlane:
    """A decoded luma plane and the full-resolution size it stands for (``block`` x ``block`` pixels per pixel here)."""

    pixels: np.ndarray  # rows x columns, uint8 or float32
    full_height: int
    full_width: int
    block: int = 1


@contextmanager
def _decoding() -> Iterator[None]:
    """Pillow's failures, and its bomb warning, as :class:`MediaError` with stable codes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except MediaError:
        raise
    except UnidentifiedImageError as exc:
        raise UnsupportedMedia("not an image format Safeguard can decode") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError, RuntimeError) as exc:
        raise MediaError(f"image could not be decoded: {exc}", code="corrupt_media") from exc


def check_pixels(im: Image.Image, max_pixels: int) -> None:
    """Raise ``too_many_pixels`` (413) when an opened image's declared size is over the limit."""
    width, height = im.size
    if width * height > max_pixels:
        raise MediaError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
            code="too_many_pixels",
            status=413,
            details={"width": width, "height": height, "max_pixels": max_pixels},
        )


def decode_image(
    data: bytes, *, max_pixels: int, draft: tuple[int, int] | None = None, draft_mode: str = "RGB"
) -> Image.Image:
    """Decode image bytes into an RGB or L Pillow image, or raise MediaError.

    ``draft`` asks the JPEG decoder for a reduced size (DCT scaling) no smaller than the given box,
    in ``draft_mode`` ("L" skips colour conversion: the JPEG's own luma plane); it is ignored for
    other formats.
    """
    if not data:
        raise MediaError("empty file", code="empty_media")
    with _decoding():
        im = open_image(data)  # media/formats.py: picks the HEIF-family decoder
        check_pixels(im, max_pixels)  # from the header, before any pixel is decoded
        if draft is not None and im.format == "JPEG":
            im.draft(draft_mode, draft)
        im.load()
    out: Image.Image = im
    if out.mode not in ("RGB", "L"):
        try:
            out = out.convert("RGB")
        except (OSError, ValueError) as exc:
            raise MediaError(f"image could not be converted: {exc}", code="corrupt_media") from exc
    return out


def decode_jpeg_luma(data: bytes, *, max_pixels: int, min_side: int) -> LumaPlane | None:
    """A JPEG's luma plane reduced by DCT scaling (1/8, 1/4 or 1/2, the most that keeps ``min_side``
    pixels on the short side), or None where that does not apply: not a YCbCr or greyscale JPEG, too
    small to reduce, or a decoder that picked another scale."""
    with _decoding():
        im = Image.open(io.BytesIO(data))
        check_pixels(im, max_pixels)
        width, height = im.size
        if im.format != "JPEG" or im.mode not in ("L", "RGB"):  # CMYK/YCCK: its "luma" is not PDQ's
            return None
        block = next((k for k in (8, 4, 2) if min(width, height) // k >= min_side), 1)
        if block == 1:
            return None
        im.draft("L", (width // block, height // block))
        if im.mode != "L" or im.size != (-(-width // block), -(-height // block)):
            return None
        im.load()
    return LumaPlane(np.asarray(im), full_height=height, full_width=width, block=block)


@dataclass
class Media:
    """Uploaded bytes plus lazily decoded forms, shared by every signal type computed from them."""

    data: bytes
    media_type: str | None
    max_pixels: int = 100_000_000
    #: short side PDQ may decode JPEGs down to (DCT scaling, see :meth:`pdq_plane`); 0 = full decode
    hash_draft: int = 0
    #: animated and multi-frame images (media/animation.py): frames hashed at most, and pixels decoded
    #: at most over all frames
    max_frames: int = 64
    max_animation_pixels: int = 400_000_000
    _image: Image.Image | None = field(default=None, repr=False)
    _plane: LumaPlane | Literal[False] | None = field(default=None, repr=False)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        max_pixels: int = 100_000_000,
        declared_type: str | None = None,
        hash_draft: int = 0,
        max_frames: int = 64,
        max_animation_pixels: int = 400_000_000,
    ) -> Media:
        if not data:
            raise MediaError("empty file", code="empty_media")
        sniffed = sniff_media_type(data)
        if sniffed is None:
            raise UnsupportedMedia(
                "unsupported or unrecognised media type" + (f" (declared {declared_type!r})" if declared_type else ""),
                details={"supported": sorted(IMAGE_TYPES | VIDEO_TYPES)},
            )
        return cls(
            data=data,
            media_type=sniffed,
            max_pixels=max_pixels,
            hash_draft=hash_draft,
            max_frames=max_frames,
            max_animation_pixels=max_animation_pixels,
        )

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

    def pdq_plane(self) -> LumaPlane | None:
        """The JPEG's luma plane, reduced by DCT scaling, for PDQ's linear form; None to hash the full decode.

        With ``hash_draft`` set and a JPEG upload, the decoder scales by the largest of 1/8, 1/4 and
        1/2 that keeps at least ``hash_draft`` pixels on the short side, and hands back its own luma
        plane (no colour conversion). :mod:`safeguard.signals.pdqmath` then applies the reference's
        filter weights for the *original* size summed over each block, so the hash stays within a
        few bits of the reference's (docs/performance.md). Other formats, CMYK JPEGs, images too
        small to reduce, and ``hash_draft == 0`` return None: the full decode and ``pdqhash``.
        """
        if self._plane is None:
            self._plane = self._reduced_plane() or False
        return self._plane or None

    def _reduced_plane(self) -> LumaPlane | None:
        if not self.hash_draft or self.media_type != "image/jpeg":
            return None
        return decode_jpeg_luma(self.data, max_pixels=self.max_pixels, min_side=self.hash_draft)
