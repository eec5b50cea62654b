"""HEIF-family images (AVIF, HEIC): sniffed from their ``ftyp`` brands and opened with the right decoder.

**Why this module.** AVIF and HEIC are the ISO base media file format (the MP4 container) with image
items inside, so the MP4 magic number alone cannot tell them from a video, and which decoder applies
depends on the payload: AV1 (AVIF, decoded by libavif inside Pillow) or HEVC (HEIC, decoded by libheif
inside ``pillow-heif``, whose wheel brings its own libheif and libde265). Leaving them undecoded meant
that an image re-saved as AVIF got only exact hashes; here they are decoded and hashed like any image.

**Brands.** The ``ftyp`` box names a major brand and compatible brands:

=====================================================  ===============  ==========================
brands                                                 sniffed as       decoder
=====================================================  ===============  ==========================
``avif`` (still), ``avis`` (sequence)                  ``image/avif``   Pillow (libavif)
``heic`` ``heix`` ``heim`` ``heis`` (still),           ``image/heic``   pillow-heif (libheif)
``hevc`` ``hevx`` ``hevm`` ``hevs`` (sequence)
``mif1`` (still), ``msf1`` (sequence): generic HEIF    by compatible    as the payload says
                                                       brand, else by
                                                       payload codec
=====================================================  ===============  ==========================

A generic ``mif1``/``msf1`` file is classified by its compatible brands, and when those name neither
codec, by the codec configuration in its ``meta`` box (``av1C``: AVIF, ``hvcC``: HEIC); what is left
is ``image/heif`` and is tried with libheif, then libavif. libavif refuses a file that does not carry
an AVIF brand, so an AV1 payload under a bare ``mif1`` is handed to it with the major brand rewritten
to ``avif`` (the same four bytes, so no offset moves).

**Bombs.** Both decoders read the image size from the container (``ispe``) when the file is opened and
decode pixels only on ``load()``, so :func:`safeguard.media.decode.decode_image` checks the pixel
limit from the header as it does for every other format. libheif's and libavif's own security limits
(image size, item count) stay on.
"""

from __future__ import annotations

import io

from PIL import Image

from safeguard.errors import UnsupportedMedia

try:  # a core dependency; without it HEIC is a clear 415, never a crash
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    HEIF_DECODER = True
except ImportError:  # pragma: no cover - the package is a core dependency
    HEIF_DECODER = False

AVIF_BRANDS = frozenset({b"avif", b"avis"})
HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})
HEIF_TYPES = frozenset({"image/avif", "image/heic", "image/heif"})
#: how far into the file the ``meta`` box is looked for (it precedes the media data in every encoder
#: we know; a file that hides it further on is sniffed as generic HEIF and still decoded)
_META_WINDOW = 1 << 16
_MAX_BOXES = 64


def ftyp_brands(data: bytes) -> tuple[bytes, list[bytes]]:
    """The major brand and the compatible brands of a file that starts with an ``ftyp`` box."""
    size = int.from_bytes(data[0:4], "big")
    end = min(size if size >= 16 else len(data), len(data), 16 + 4 * 64)
    compatible = [data[k : k + 4] for k in range(16, end - 3, 4)]
    return data[8:12], compatible


def _meta_box(data: bytes) -> bytes:
    """The top-level ``meta`` box's bytes within the first :data:`_META_WINDOW` bytes (empty if none)."""
    pos, n = 0, 0
    limit = min(len(data), _META_WINDOW)
    while pos + 8 <= limit and n < _MAX_BOXES:
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if size == 1 and pos + 16 <= len(data):
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:
            size = len(data) - pos
        if size < 8:
            return b""
        if kind == b"meta":
            return data[pos : min(pos + size, pos + _META_WINDOW)]
        pos += size
        n += 1
    return b""


def payload_codec(data: bytes) -> str | None:
    """``"av1"`` or ``"hevc"`` from the codec configuration in the ``meta`` box, or None."""
    meta = _meta_box(data)
    if b"av1C" in meta or b"av01" in meta:
        return "av1"
    if b"hvcC" in meta or b"hvc1" in meta:
        return "hevc"
    return None


def sniff_isobmff_image(data: bytes) -> str | None:
    """``image/avif``, ``image/heic`` or ``image/heif`` for an ISO-BMFF image, None for anything else
    (a video: the caller's MP4/QuickTime rules apply)."""
    if data[4:8] != b"ftyp":
        return None
    major, compatible = ftyp_brands(data)
    if major in AVIF_BRANDS:
        return "image/avif"
    if major in HEIC_BRANDS:
        return "image/heic"
    if major not in GENERIC_BRANDS:
        return None
    brands = set(compatible)
    if brands & AVIF_BRANDS:
        return "image/avif"
    if brands & HEIC_BRANDS:
        return "image/heic"
    codec = payload_codec(data)
    return {"av1": "image/avif", "hevc": "image/heic"}.get(codec or "", "image/heif")


def open_image(data: bytes) -> Image.Image:
    """``Image.open`` for the bytes, with the decoder their type needs; pixels are not decoded yet.

    For an AVIF, HEIC or generic HEIF file this picks the plug-in explicitly (Pillow's own order would
    let libheif claim an AV1 file it cannot decode); any other format opens as Pillow finds it.
    """
    kind = sniff_isobmff_image(data)
    if kind is None:
        return Image.open(io.BytesIO(data))
    if kind == "image/avif":
        major, compatible = ftyp_brands(data)
        if major not in AVIF_BRANDS and not set(compatible) & AVIF_BRANDS:
            data = data[:8] + b"avif" + data[12:]  # libavif wants an AVIF brand; same length, no offset moves
        return Image.open(io.BytesIO(data), formats=["AVIF"])
    if not HEIF_DECODER:  # pragma: no cover - the package is a core dependency
        raise UnsupportedMedia(f"{kind} needs the pillow-heif package, which is not installed")
    formats = ["HEIF"] if kind == "image/heic" else ["HEIF", "AVIF"]
    return Image.open(io.BytesIO(data), formats=formats)
