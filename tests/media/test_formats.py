"""AVIF and HEIC: sniffed by brand (and payload for generic HEIF), decoded, hashed like any image, bounded."""

from __future__ import annotations

import io

import pytest
from PIL import AvifImagePlugin, Image

from safeguard.errors import MediaError, SafeguardError
from safeguard.media import Media, sniff_media_type
from safeguard.media.decode import decode_image
from safeguard.media.formats import ftyp_brands, payload_codec, sniff_isobmff_image
from safeguard.signals.base import hamming_hex
from safeguard.signals.pdq import PDQSignal
from tests.media_factory import encode, heif_bytes, make_image


def box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    return box(b"ftyp", major + b"\0\0\0\0" + b"".join(compatible))


def pdq(data: bytes) -> str:
    return PDQSignal().compute(Media.from_bytes(data))[0].value


def with_brands(data: bytes, major: bytes, *compatible: bytes) -> bytes:
    """The file with its ftyp box replaced (offsets inside ``meta`` are relative to the file, so keep the size)."""
    size = int.from_bytes(data[:4], "big")
    new = ftyp(major, *compatible)
    assert len(new) <= size
    new = ftyp(major, *compatible, *[b"mif1"] * ((size - len(new)) // 4))
    assert len(new) == size
    return new + data[size:]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (ftyp(b"avif", b"avif", b"mif1", b"miaf"), "image/avif"),
        (ftyp(b"avis", b"avif", b"msf1"), "image/avif"),
        (ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
        (ftyp(b"heix", b"mif1"), "image/heic"),
        (ftyp(b"hevc", b"msf1"), "image/heic"),
        (ftyp(b"hevx", b"msf1"), "image/heic"),
        (ftyp(b"mif1", b"mif1", b"avif"), "image/avif"),  # generic brand, AVIF compatible
        (ftyp(b"msf1", b"msf1", b"avis"), "image/avif"),
        (ftyp(b"mif1", b"mif1", b"heic"), "image/heic"),
        (ftyp(b"mif1", b"mif1") + box(b"meta", b"\0" * 4 + box(b"av1C", b"\x81")), "image/avif"),  # by payload
        (ftyp(b"mif1", b"mif1") + box(b"meta", b"\0" * 4 + box(b"hvcC", b"\x01")), "image/heic"),
        (ftyp(b"mif1", b"mif1", b"miaf"), "image/heif"),  # generic, payload unknown: tried with both
        (ftyp(b"isom", b"isom", b"mp41"), "video/mp4"),
        (ftyp(b"qt  "), "video/quicktime"),
    ],
)
def test_brand_table(head: bytes, expected: str) -> None:
    data = head + b"\0" * 64
    assert sniff_media_type(data) == expected
    assert sniff_isobmff_image(data) == (expected if expected.startswith("image/") else None)


def test_real_files_sniff_by_brand_and_payload() -> None:
    avif, heic = heif_bytes(fmt="AVIF"), heif_bytes(fmt="HEIF")
    assert ftyp_brands(avif)[0] == b"avif" and ftyp_brands(heic)[0] == b"heic"
    assert (payload_codec(avif), payload_codec(heic)) == ("av1", "hevc")
    assert (sniff_media_type(avif), sniff_media_type(heic)) == ("image/avif", "image/heic")


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_avif_and_heic_hash_like_the_same_image_as_jpeg(fmt: str) -> None:
    jpeg = encode(make_image(3), "JPEG", quality=90)
    media = Media.from_bytes(heif_bytes(3, fmt))
    assert media.is_image and media.image().size == (320, 240)
    [sig] = PDQSignal().compute(media)
    assert sig.quality is not None and sig.quality >= 50 and sig.frame is None
    assert hamming_hex(sig.value, pdq(jpeg)) <= 12
    assert hamming_hex(sig.value, pdq(encode(make_image(4), "JPEG"))) > 60  # another image is far


@pytest.mark.parametrize("compatible", [(b"mif1", b"miaf"), (b"mif1", b"avif", b"miaf")])
def test_generic_mif1_with_an_av1_payload_still_decodes(compatible: tuple[bytes, ...]) -> None:
    original = heif_bytes(5, "AVIF")
    data = with_brands(original, b"mif1", *compatible)
    assert ftyp_brands(data)[0] == b"mif1"
    assert sniff_media_type(data) == "image/avif"
    assert pdq(data) == pdq(original)


def test_generic_mif1_with_a_hevc_payload_decodes() -> None:
    original = heif_bytes(6, "HEIF")
    data = with_brands(original, b"mif1", b"mif1", b"miaf")
    assert sniff_media_type(data) == "image/heic"
    assert pdq(data) == pdq(original)


@pytest.mark.parametrize(("fmt", "plugin"), [("AVIF", AvifImagePlugin.AvifImageFile), ("HEIF", None)])
def test_pixel_limit_checked_from_the_header_before_decoding(
    fmt: str, plugin: type[Image.Image] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pillow_heif.as_plugin import HeifImageFile

    def no_decoding(self: Image.Image) -> None:
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(plugin or HeifImageFile, "load", no_decoding)
    data = heif_bytes(7, fmt, size=(640, 480))
    with pytest.raises(MediaError) as err:
        decode_image(data, max_pixels=640 * 480 - 1)
    assert (err.value.code, err.value.status) == ("too_many_pixels", 413)
    assert err.value.details["width"] == 640


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
@pytest.mark.parametrize("cut", [0.3, 0.7, 0.95])
def test_truncated_or_damaged_files_are_4xx_not_500(fmt: str, cut: float) -> None:
    data = heif_bytes(8, fmt)
    bad = [data[: int(len(data) * cut)], data[:200] + bytes(len(data) - 200)]
    for b in bad:
        with pytest.raises(SafeguardError) as err:
            PDQSignal().compute(Media.from_bytes(b))
        assert 400 <= err.value.status < 500, err.value


def test_hevc_payload_under_an_avif_brand_is_a_4xx() -> None:
    data = with_brands(heif_bytes(9, "HEIF"), b"avif", b"avif", b"mif1")
    assert sniff_media_type(data) == "image/avif"
    with pytest.raises(SafeguardError) as err:
        decode_image(data, max_pixels=10**8)
    assert 400 <= err.value.status < 500


def test_heic_opens_through_image_open_elsewhere() -> None:
    """Registering the HEIF plug-in must not stop Pillow opening anything else."""
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"):
        assert Image.open(io.BytesIO(encode(make_image(1), fmt))).format == fmt
