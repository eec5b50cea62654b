"""Sniff and decode uploaded media safely.

The type is read from the bytes (magic numbers), never trusted from the filename or the client's
Content-Type. Images are checked against a pixel limit *before* pixel data is decoded (the header
gives the size), which is the decompression-bomb guard; truncated and corrupt files raise
:class:`~safeguard.errors.MediaError` with a stable code instead of a stack trace.

Memory: the header also says what a decode will cost (:func:`plan_image`), so a scan reserves that
from the process's :class:`~safeguard.media.budget.DecodeBudget` first (:meth:`Media.budgeted`), and
large images are never hashed from a full-size RGB array: PDQ only needs a luma plane reduced by
whole blocks (:mod:`safeguard.signals.pdqmath`), which a JPEG's decoder gives by DCT scaling and
other formats by block means taken a few rows at a time (:func:`reduced_luma`). See
docs/hardening.md, "Memory and time budgets".
"""

from __future__ import annotations

import io
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from safeguard.errors import MediaError, UnsupportedMedia
from safeguard.media.budget import DecodeBudget
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


#: Pillow's bytes per pixel in memory by mode (every other mode, RGB included, takes 4)
_STORAGE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
#: what ``pdqhash.compute`` allocates per pixel of the array it hashes (measured: 20 B/px)
PDQHASH_BYTES_PER_PIXEL = 20
#: Pillow's WebP decoder holds libwebp's canvas and a copy of it besides the image (measured ~12 B/px)
WEBP_PILLOW_EXTRA = 12
#: FFmpeg's WebP decoder: one ARGB frame (4 B/px) and its scaler's small output
WEBP_AV_BYTES_PER_PIXEL = 5
#: non-JPEG images over this many pixels are hashed from a reduced luma plane (a few bits from the
#: reference hash, as the JPEG ``fast`` path), never from a full-size RGB array and ``pdqhash``
REDUCE_ABOVE_PIXELS = 4 * 1024 * 1024
#: pixels per band of rows when block means are taken (each band is converted to float on its own)
BAND_PIXELS = 1024 * 1024
#: bytes per band pixel: a crop, an RGB conversion, float32 RGB and luma
BAND_BYTES_PER_PIXEL = 4 + 4 + 12 + 8
#: fixed allowance for a scan's small buffers (the compressed bytes are the caller's, not counted)
SCAN_OVERHEAD_BYTES = 16 * 1024 * 1024
#: short side a reduced plane keeps when the budget forces a reduced decode in ``exact`` mode
BUDGET_MIN_SIDE = 256


@dataclass(frozen=True)
class ImagePlan:
    """How an image will be decoded for hashing, and what that costs, read from its header alone."""

    width: int
    height: int
    mode: str
    format: str
    #: 1: full decode hashed by ``pdqhash``; >1: a luma plane of block means (``block`` x ``block``)
    block: int
    #: the short side the reduced plane keeps (the JPEG draft's ``min_side``)
    min_side: int
    #: estimated peak bytes of the scan's decode and hashing
    cost: int
    #: decoded a band of rows at a time (8-bit PNG), never held whole
    banded: bool = False


def _block_for(width: int, height: int, min_side: int) -> int:
    """The largest of 8, 4 and 2 that keeps ``min_side`` pixels on the short side, else 1."""
    if min_side <= 0:
        return 1
    return next((k for k in (8, 4, 2) if min(width, height) // k >= min_side), 1)


def full_decode_cost(width: int, height: int, mode: str, fmt: str) -> int:
    """Peak bytes of decoding to RGB/L and hashing with ``pdqhash`` (the reference path)."""
    px = width * height
    per = _STORAGE_BYTES.get(mode, 4) + (0 if mode in ("RGB", "L") else 4) + 3 + PDQHASH_BYTES_PER_PIXEL
    if fmt == "WEBP":
        per += WEBP_PILLOW_EXTRA
    return px * per + SCAN_OVERHEAD_BYTES


def reduced_decode_cost(width: int, height: int, mode: str, fmt: str, block: int) -> int:
    """Peak bytes of a reduced-plane decode: JPEG DCT scaling, FFmpeg (WebP) or Pillow plus bands."""
    px = width * height
    plane = -(-width // block) * -(-height // block)
    if fmt == "JPEG":
        return plane * 24 + SCAN_OVERHEAD_BYTES  # the scaled luma, its float copy, the matrix products
    load = px * (WEBP_AV_BYTES_PER_PIXEL if fmt == "WEBP" else _STORAGE_BYTES.get(mode, 4))
    band = min(px, BAND_PIXELS) * BAND_BYTES_PER_PIXEL
    return load + band + plane * 16 + SCAN_OVERHEAD_BYTES


def _jpeg_coefficients(im: Image.Image) -> int:
    """Bytes libjpeg holds for a progressive JPEG's coefficients (two a sample, every component at
    its sampling), whatever the output scale: DCT scaling does not shrink it."""
    if im.format != "JPEG" or not im.info.get("progressive"):
        return 0
    layers = getattr(im, "layer", None) or []
    hmax = max((int(h) for _, h, _, _ in layers), default=1) or 1
    vmax = max((int(v) for _, _, v, _ in layers), default=1) or 1
    share = sum(int(h) * int(v) for _, h, v, _ in layers) / (hmax * vmax) if layers else 4.0
    return int(im.size[0] * im.size[1] * 2 * share)


def plan_image(im: Image.Image, *, hash_draft: int, budget_bytes: int = 0) -> ImagePlan:
    """Choose the decode for an opened (header-only) image: the reference's full decode for normal
    images; a reduced luma plane for JPEGs in ``fast`` mode (``hash_draft``), for other images over
    :data:`REDUCE_ABOVE_PIXELS`, and for any image whose full decode would not fit in the budget."""
    width, height = im.size
    fmt, mode = im.format or "", im.mode
    full = full_decode_cost(width, height, mode, fmt)
    over_budget = budget_bytes > 0 and full > budget_bytes
    min_side = hash_draft or (BUDGET_MIN_SIDE if over_budget else 0)
    block = 1
    if fmt == "JPEG":
        if mode in ("L", "RGB") and (hash_draft or over_budget):  # CMYK/YCCK: its "luma" is not PDQ's
            block = _block_for(width, height, min_side)
    elif width * height > REDUCE_ABOVE_PIXELS or over_budget:
        block = _block_for(width, height, min_side or BUDGET_MIN_SIDE)
    banded = block > 1 and png_banded(im)
    if block == 1:
        cost = full
    elif banded:
        band = min(width * height, BAND_PIXELS + width * (block + 1))
        cost = band * PNG_BAND_BYTES_PER_PIXEL + -(-width // block) * -(-height // block) * 16 + SCAN_OVERHEAD_BYTES
    else:
        cost = reduced_decode_cost(width, height, mode, fmt, block)
    cost += _jpeg_coefficients(im)
    return ImagePlan(width, height, mode, fmt, block, min_side or BUDGET_MIN_SIDE, cost, banded)


#: the reference's luma weights (Rec. 601), as pdqhash applies them to R, G and B
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def _rgb_or_l(band: Image.Image) -> Image.Image:
    """A band converted as the full decode converts it (anything but RGB and L goes through RGB)."""
    return band if band.mode in ("RGB", "L") else band.convert("RGB")


def _band_rows(width: int, block: int) -> int:
    """Rows per band: about :data:`BAND_PIXELS` pixels, a whole number of blocks."""
    return max(block, (BAND_PIXELS // max(width, 1)) // block * block)


def _block_means(bands: Iterator[Image.Image], width: int, height: int, block: int) -> np.ndarray:
    """Luma means over ``block`` x ``block`` pixels of RGB or L bands given top to bottom (each a
    whole number of blocks high but the last). Pillow's ``reduce`` takes the means of the samples
    (partial blocks at the right and bottom edges average what they hold; each mean rounded to an
    integer, as a JPEG decoder's DCT scaling rounds), then the reference's luma of the means, which
    is the mean of the luma since luma is linear. pdqhash sees grey as equal R, G and B, so a grey
    image's luma is its value."""
    out = np.empty((-(-height // block), -(-width // block)), dtype=np.float32)
    y0 = 0
    for band in bands:
        n = band.size[1]
        if n == 0 or y0 % block or y0 + n > height or band.size[0] != width:
            raise MediaError("image rows do not match its header", code="corrupt_media")
        small = np.asarray(_rgb_or_l(band).reduce(block), dtype=np.float64)
        luma = small @ LUMA_WEIGHTS if small.ndim == 3 else small
        out[y0 // block : y0 // block + luma.shape[0]] = luma
        y0 += n
    if y0 != height:
        raise MediaError("image data ends before its last row", code="corrupt_media")
    return out


def reduced_luma(im: Image.Image, block: int) -> np.ndarray:
    """Means of the luma of a (loaded) image over ``block`` x ``block`` pixels, computed a band of
    rows at a time so no full-size RGB or float copy of the image is ever made."""
    width, height = im.size
    rows = _band_rows(width, block)
    bands = (im.crop((0, y0, width, min(height, y0 + rows))) for y0 in range(0, height, rows))
    return _block_means(bands, width, height, block)


#: 8-bit PNG colour types Pillow decodes band by band here: (channels, mode of the raw samples)
_PNG_RAW = {0: (1, "L"), 2: (3, "RGB"), 3: (1, "P"), 4: (2, "LA"), 6: (4, "RGBA")}
#: the PNG rawmodes (Pillow's tile argument) of those colour types
PNG_BANDED_RAWMODES = frozenset({"L", "RGB", "P", "LA", "RGBA"})
#: bytes per band pixel of a banded PNG decode: raw scanlines, their stored-zlib copy, the band image,
#: its float luma (and float RGB)
PNG_BAND_BYTES_PER_PIXEL = 4 + 4 + 4 + 4 + 12 + 4


def png_banded(im: Image.Image) -> bool:
    """Whether :func:`png_bands` decodes this (opened) PNG: 8 bits a sample, not interlaced."""
    tile = getattr(im, "tile", None)  # an ImageFile's, before loading: the PNG's rawmode
    if im.format != "PNG" or im.info.get("interlace") or not tile:
        return False
    return tile[0].args in PNG_BANDED_RAWMODES


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    view = memoryview(data)
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = bytes(data[pos + 4 : pos + 8])
        if pos + 12 + length > len(data):
            raise MediaError("PNG chunk runs past the end of the file", code="corrupt_media")
        yield kind, view[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return
        pos += 12 + length


def png_bands(data: bytes, block: int) -> Iterator[Image.Image]:
    """An 8-bit, non-interlaced PNG a band of rows at a time (L or RGB), never the whole image.

    The compressed rows are inflated as they are needed; each band's scanlines go to Pillow's own
    PNG row decoder (``zip``: the filters, then unpacking), preceded by the previous band's last row
    unfiltered (filter type 0), which the first row's Up, Average and Paeth filters refer to. So
    the pixels are Pillow's, bit for bit, in a few megabytes."""
    header = bytes(data[16:29])
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    if depth != 8 or interlace or colour not in _PNG_RAW:
        raise MediaError("not an 8-bit progressive PNG", code="corrupt_media")
    channels, mode = _PNG_RAW[colour]
    palette: bytes | None = None
    idat: list[memoryview] = []
    for kind, body in _png_chunks(data):
        if kind == b"PLTE":
            palette = bytes(body[: min(len(body) // 3, 256) * 3])
        elif kind == b"IDAT":
            idat.append(body)
    stride = 1 + width * channels
    rows = _band_rows(width, block)
    pending = bytearray()
    previous = b""
    done = 0
    for piece in _inflate(idat, rows * stride):
        pending += piece
        while done < height and len(pending) >= min(rows, height - done) * stride:
            n = min(rows, height - done)
            band, previous = _png_band(bytes(pending[: n * stride]), previous, width, n, mode, palette)
            del pending[: n * stride]
            done += n
            yield band
        if done >= height:
            return
    raise MediaError("PNG data ends before its last row", code="corrupt_media")


def _inflate(chunks: list[memoryview], limit: int) -> Iterator[bytes]:
    """The inflated bytes of a zlib stream split over ``chunks``, at most ``limit`` bytes a piece."""
    inflate = zlib.decompressobj()
    try:
        for body in chunks:
            tail = bytes(body)
            while tail:
                yield inflate.decompress(tail, limit)
                tail = inflate.unconsumed_tail
        while piece := inflate.decompress(b"", limit):  # output a long match still owes
            yield piece
        yield inflate.flush()
    except zlib.error as exc:
        raise MediaError(f"PNG data could not be inflated: {exc}", code="corrupt_media") from exc


def _png_band(
    raw: bytes, previous: bytes, width: int, n: int, mode: str, palette: bytes | None
) -> tuple[Image.Image, bytes]:
    """One band (L or RGB, converted as the full decode converts), and its last row unfiltered
    (filter byte 0 and the raw samples) for the next band's filters to refer to."""
    lead = 1 if previous else 0
    with _decoding():
        im = Image.frombytes(mode, (width, n + lead), zlib.compress(previous + raw, 0), "zip", mode)
    if lead:
        im = im.crop((0, 1, width, n + 1))
    last = b"\x00" + im.crop((0, n - 1, width, n)).tobytes()
    if mode == "P":  # indices: the colours come from the palette, as Pillow converts P to RGB
        if not palette:
            raise MediaError("palette PNG without a palette", code="corrupt_media")
        im.putpalette(palette)
    return _rgb_or_l(im), last


def _av_reduced_luma(data: bytes, width: int, height: int, block: int) -> np.ndarray | None:
    """A WebP's luma reduced in FFmpeg's scaler (area averaging), or None where FFmpeg cannot decode
    it as a still of the header's size. Pillow's WebP decoder would hold about 16 bytes per pixel."""
    import av
    import av.error

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                if (frame.width, frame.height) != (width, height):
                    return None
                rgb = frame.to_ndarray(
                    format="rgb24", width=-(-width // block), height=-(-height // block), interpolation="AREA"
                )
                a = rgb.astype(np.float32)
                return a[..., 0] * np.float32(0.299) + a[..., 1] * np.float32(0.587) + a[..., 2] * np.float32(0.114)
    except (av.error.FFmpegError, IndexError, ValueError, OSError):
        return None
    return None


def decode_reduced_plane(
    data: bytes, plan: ImagePlan, *, max_pixels: int, budget: DecodeBudget | None = None
) -> LumaPlane:
    """A non-JPEG image's luma plane of ``plan.block`` x ``plan.block`` means (see :func:`plan_image`)."""
    block = plan.block
    if plan.format == "WEBP":
        pixels = _av_reduced_luma(data, plan.width, plan.height, block)
        if pixels is not None:
            return LumaPlane(pixels, full_height=plan.height, full_width=plan.width, block=block)
    if plan.banded:
        pixels = _block_means(png_bands(data, block), plan.width, plan.height, block)
        return LumaPlane(pixels, full_height=plan.height, full_width=plan.width, block=block)
    extra = plan.width * plan.height * WEBP_PILLOW_EXTRA if plan.format == "WEBP" else 0
    # FFmpeg could not decode this WebP (an animation, say): Pillow's decoder needs more room
    with budget.reserve(extra, "WebP decode") if budget is not None and extra else nullcontext(), _decoding():
        im = Image.open(io.BytesIO(data))
        check_pixels(im, max_pixels)
        im.load()
        pixels = reduced_luma(im, block)
    return LumaPlane(pixels, full_height=plan.height, full_width=plan.width, block=block)


@dataclass
class Media:
    """Uploaded bytes plus lazily decoded forms, shared by every signal type computed from them."""

    data: bytes
    media_type: str | None
    max_pixels: int = 100_000_000
    #: short side PDQ may decode JPEGs down to (DCT scaling, see :meth:`pdq_plane`); 0 = full decode
    hash_draft: int = 0
    #: the process's decode memory budget (None: unbudgeted, as in the CLI and tests)
    budget: DecodeBudget | None = field(default=None, repr=False)
    #: animated and multi-frame images (media/animation.py): frames hashed at most, and pixels decoded
    #: at most over all frames
    max_frames: int = 64
    max_animation_pixels: int = 400_000_000
    _image: Image.Image | None = field(default=None, repr=False)
    _plane: LumaPlane | Literal[False] | None = field(default=None, repr=False)
    _plan: ImagePlan | None = field(default=None, repr=False)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        max_pixels: int = 100_000_000,
        declared_type: str | None = None,
        hash_draft: int = 0,
        budget: DecodeBudget | None = None,
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
            budget=budget,
            max_frames=max_frames,
            max_animation_pixels=max_animation_pixels,
        )

    @property
    def is_image(self) -> bool:
        return self.media_type in IMAGE_TYPES

    @property
    def is_video(self) -> bool:
        return self.media_type in VIDEO_TYPES

    def plan(self) -> ImagePlan:
        """How this image is decoded for hashing and what that costs (header only; 413 over the pixel cap)."""
        if self._plan is None:
            if not self.is_image:
                raise UnsupportedMedia(f"{self.media_type} is not an image")
            with _decoding():
                im = Image.open(io.BytesIO(self.data))
                check_pixels(im, self.max_pixels)
                total = self.budget.total if self.budget is not None else 0
                self._plan = plan_image(im, hash_draft=self.hash_draft, budget_bytes=total)
        return self._plan

    def decode_cost(self) -> int:
        """Estimated peak bytes of decoding and hashing this media (0 when unknown: a decode then fails)."""
        if self.is_image:
            return self.plan().cost
        if self.is_video:
            from safeguard.media.video import video_decode_cost

            return video_decode_cost(self.data, max_frame_pixels=self.max_pixels)
        return 0

    @contextmanager
    def budgeted(self) -> Iterator[None]:
        """Hold this media's estimated decode cost in the process's budget for the block (a scan's
        signals and detectors), then drop the decoded image: see :mod:`safeguard.media.budget`.
        Raises 413 ``too_many_pixels``/``over_memory_budget`` or 503 ``decode_busy``."""
        if self.budget is None or not self.budget.enabled:
            yield
            return
        with self.budget.reserve(self.decode_cost(), f"decoding this {self.media_type}"):
            try:
                yield
            finally:
                self._image = None  # the bytes the reservation covered go back with it

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
        few bits of the reference's (docs/performance.md). Other formats over
        :data:`REDUCE_ABOVE_PIXELS`, and any image whose full decode would not fit in the decode
        budget, get the same kind of plane from block means (:func:`decode_reduced_plane`). Smaller
        images of other formats, CMYK JPEGs, images too small to reduce, and JPEGs with
        ``hash_draft == 0`` return None: the full decode and ``pdqhash``.
        """
        if self._plane is None:
            self._plane = self._reduced_plane() or False
        return self._plane or None

    def _reduced_plane(self) -> LumaPlane | None:
        if not self.is_image:
            return None
        plan = self.plan()
        if plan.block == 1:
            return None
        if plan.format == "JPEG":
            return decode_jpeg_luma(self.data, max_pixels=self.max_pixels, min_side=plan.min_side)
        return decode_reduced_plane(self.data, plan, max_pixels=self.max_pixels, budget=self.budget)
