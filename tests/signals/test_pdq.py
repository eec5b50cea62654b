"""PDQ hashes equal the reference's (python-threatexchange over pdqhash) for the same decoded image."""

from __future__ import annotations

import hashlib

import pytest
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

from safeguard.media import Media
from safeguard.signals import compute_signals
from safeguard.signals.base import hamming_hex
from safeguard.signals.pdq import PDQSignal
from tests.media_factory import encode, image_bytes, make_image


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "TIFF", "WEBP"])
def test_pdq_equals_reference(seed: int, fmt: str) -> None:
    data = image_bytes(seed, fmt, size=(257 + seed * 40, 190 + seed * 13))
    ours = {s.type: s for s in compute_signals(Media.from_bytes(data))}
    ref_hash, ref_quality = pdq_from_bytes(data)
    assert ours["pdq"].value == ref_hash
    assert ours["pdq"].quality == ref_quality
    assert ours["sha256"].value == hashlib.sha256(data).hexdigest()
    assert ours["md5"].value == hashlib.md5(data).hexdigest()


def test_pdq_greyscale_equals_reference() -> None:
    data = encode(make_image(3).convert("L"), "PNG")
    [pdq] = PDQSignal().compute(Media.from_bytes(data))
    assert (pdq.value, pdq.quality) == pdq_from_bytes(data)


def test_near_duplicates_are_near_and_different_images_far() -> None:
    im = make_image(7, (640, 480))
    a = PDQSignal().compute(Media.from_bytes(encode(im, "JPEG", quality=95)))[0].value
    b = PDQSignal().compute(Media.from_bytes(encode(im.resize((320, 240)), "JPEG", quality=60)))[0].value
    c = PDQSignal().compute(Media.from_bytes(encode(make_image(8, (640, 480)))))[0].value
    assert hamming_hex(a, b) <= 31
    assert hamming_hex(a, c) > 31
