"""Animated and multi-frame images: every frame is considered, not just the one a still decode shows.

**Why.** A still decode of an animated GIF, WebP, APNG or AVIF shows its first frame; of a multi-page
TIFF, its first page; of an MPO (multi-picture JPEG), its first picture; of a HEIF collection, its
primary image. Hashing only that one let a benign first frame carry banked frames after it. Here the
other frames are hashed with PDQ too (``signals/pdq.py``), each signal carrying its frame index, and
matched against the image banks like any image (``detectors/hash_match.py`` puts the matching frame
indexes in the finding).

**Still images cost nothing more.** :func:`plan` first asks the bytes, without decoding, whether the
file can hold more than one frame (GIF: a second image descriptor; PNG: an ``acTL`` chunk before the
image data; WebP: the animation flag; TIFF: a second IFD; JPEG: an MPF marker); only then is the file
opened to count frames. A still image gets ``None`` and is hashed exactly as before.

**Sampling, like video frames.** An animation of up to ``max_frames`` frames (setting
``SAFEGUARD_ANIMATION_MAX_FRAMES``) has every frame hashed; a longer one has ``max_frames`` frames
hashed, evenly spread from the first to the last (a video is sampled at one frame a second the same
way), so a banked frame shown for fewer than ``n_frames / max_frames`` frames may fall between two
samples.

**Bounded.** Frames are decoded one at a time, each checked against the pixel limit from its header
before its pixels are decoded. GIF, APNG, WebP and AVIF frames are deltas on the previous frame, so
reaching frame *k* decodes every frame before it: the pixels decoded over the whole animation (each
frame counted as at least :data:`MIN_FRAME_COST` pixels, a frame's fixed cost) must stay within
``max_total_pixels`` (setting ``SAFEGUARD_ANIMATION_MAX_PIXELS``), checked from the frame count and
canvas size before the first frame is decoded and again as frames are decoded; past it the upload
gets ``413 animation_too_large``. Frame counts come from the container (GIF and TIFF are walked here,
stopping once the budget is exceeded), never from decoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from safeguard.errors import MediaError
from safeguard.media.decode import Media, _decoding, check_pixels
from safeguard.media.formats import HEIF_TYPES, open_image

#: pixels a frame counts for at least in the decoding budget (a frame has a fixed cost, however small)
MIN_FRAME_COST = 256 * 256
#: formats whose frame *k* is decoded from frame *k-1* (reaching it decodes every frame before it)
SEQUENTIAL = frozenset({"image/gif", "image/png", "image/webp", "image/avif"})


@dataclass(frozen=True)
class Animation:
    """What :func:`frames` will hash: ``hashed`` (ascending) besides ``first``, the frame a still decode shows."""

    n_frames: int
    first: int
    width: int
    height: int
    hashed: tuple[int, ...]
    sequential: bool


def sample(n_frames: int, max_frames: int) -> list[int]:
    """Frame indexes to hash: all of them up to ``max_frames``, else ``max_frames`` evenly spread
    from the first to the last."""
    if n_frames <= max_frames:
        return list(range(n_frames))
    if max_frames <= 1:
        return [0]
    step = (n_frames - 1) / (max_frames - 1)
    return sorted({round(i * step) for i in range(max_frames)})


def plan(media: Media) -> Animation | None:
    """The frames of an animated or multi-frame image to hash, or None for a still image (or a video).

    Raises ``413 animation_too_large`` when a sequential animation's frames times its canvas exceed
    ``media.max_animation_pixels``.
    """
    data, kind = media.data, media.media_type
    if not media.is_image or not _may_have_frames(data, kind):
        return None
    cap = media.max_animation_pixels // MIN_FRAME_COST + 2  # count no further than the budget can reach
    with _decoding():
        im = open_image(data)
        width, height = im.size
        if kind == "image/gif":
            n = _gif_frames(data, cap)
        elif kind == "image/tiff":
            n = _tiff_pages(data, cap)
        else:
            n = int(getattr(im, "n_frames", 1))
        first = im.tell()
        im.close()
    if n <= 1:
        return None
    sequential = kind in SEQUENTIAL
    if sequential:
        _check_budget(n * max(width * height, MIN_FRAME_COST), media, n)
    hashed = tuple(k for k in sample(n, max(media.max_frames, 1)) if k != first)
    return Animation(n, first, width, height, hashed, sequential)


def frames(media: Media, anim: Animation) -> Iterator[tuple[int, Image.Image]]:
    """``(index, RGB or L image)`` for each frame in ``anim.hashed``, decoded one at a time.

    Every frame passed on the way (sequential formats) or decoded (the others) is checked against the
    pixel limit before its pixels are decoded and counted against the animation's pixel budget.
    """
    if not anim.hashed:
        return
    wanted = set(anim.hashed)
    order = range(1, anim.hashed[-1] + 1) if anim.sequential else anim.hashed
    spent = max(anim.width * anim.height, MIN_FRAME_COST)  # the first frame, decoded by the still path
    with _decoding():
        im = open_image(media.data)
        try:
            for k in order:
                im.seek(k)
                check_pixels(im, media.max_pixels)  # from this frame's header, before its pixels
                spent += max(im.size[0] * im.size[1], MIN_FRAME_COST)
                _check_budget(spent, media, anim.n_frames)
                if k not in wanted:
                    continue  # decoded by the next seek (sequential formats only)
                im.load()
                frame: Image.Image = im if im.mode in ("RGB", "L") else im.convert("RGB")
                yield k, frame
        finally:
            im.close()


def _check_budget(pixels: int, media: Media, n_frames: int) -> None:
    if pixels > media.max_animation_pixels:
        raise MediaError(
            f"animation of {n_frames} frames decodes {pixels} pixels or more, over the limit of "
            f"{media.max_animation_pixels}",
            code="animation_too_large",
            status=413,
            details={"frames": n_frames, "max_animation_pixels": media.max_animation_pixels},
        )


def _may_have_frames(data: bytes, kind: str | None) -> bool:
    """Whether the file can hold more than one frame, from its bytes alone (no decoding)."""
    if kind == "image/gif":
        return _gif_frames(data, 2) > 1
    if kind == "image/png":
        idat = data.find(b"IDAT")
        return data.find(b"acTL", 8, idat if idat > 0 else len(data)) > 0
    if kind == "image/webp":
        return data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x02)
    if kind == "image/tiff":
        return _tiff_pages(data, 2) > 1
    if kind == "image/jpeg":
        return data.find(b"MPF\x00", 0, 1 << 16) > 0
    return kind in HEIF_TYPES


def _gif_frames(data: bytes, cap: int) -> int:
    """Image descriptors in a GIF, counted the way Pillow walks them (unknown bytes skipped), up to ``cap``."""
    if len(data) < 13:
        return 1
    pos = 13
    if data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)
    n, end = 0, len(data)
    while pos < end and n < cap:
        b = data[pos]
        if b == 0x3B:  # trailer
            break
        if b == 0x21:  # extension: label, then data sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif b == 0x2C:  # image descriptor, local colour table, LZW code size, data sub-blocks
            n += 1
            if pos + 10 > end:
                break
            flags = data[pos + 9]
            pos += 10 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0) + 1
            pos = _skip_sub_blocks(data, pos)
        else:
            pos += 1
    return max(n, 1)


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos


def _tiff_pages(data: bytes, cap: int) -> int:
    """Pages (IFDs) in a classic TIFF's chain, loops stopped, up to ``cap``."""
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    offset = int.from_bytes(data[4:8], order)
    seen: set[int] = set()
    while offset and offset not in seen and offset + 2 <= len(data) and len(seen) < cap:
        seen.add(offset)
        entries = int.from_bytes(data[offset : offset + 2], order)
        nxt = offset + 2 + 12 * entries
        if nxt + 4 > len(data):
            break
        offset = int.from_bytes(data[nxt : nxt + 4], order)
    return max(len(seen), 1)
