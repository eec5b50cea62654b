"""PDQ decode modes: ``exact`` is the reference's hash bit for bit; ``fast`` stays close to it."""

from __future__ import annotations

import io

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageDraw

from safeguard.config import Settings
from safeguard.errors import ConfigError
from safeguard.media import LumaPlane, Media
from safeguard.signals import get_signal_type, pdqmath
from safeguard.signals.base import hamming_hex
from safeguard.signals.pdq import bits_to_hex, media_dihedral_hex


def _photo(w: int, h: int, seed: int, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    arr = np.stack(
        [128 + 90 * np.sin(rng.uniform(-3, 3) * x / w + rng.uniform(-3, 3) * y / h + c) for c in range(3)], 2
    )
    im = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        d.ellipse([x0, y0, x0 + w // 4, y0 + h // 4], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    buf = io.BytesIO()
    im.save(buf, fmt, quality=90) if fmt == "JPEG" else im.save(buf, fmt)
    return buf.getvalue()


def _reference(data: bytes) -> str:
    threatexchange = pytest.importorskip("threatexchange.signal_type.pdq.pdq_hasher")
    return threatexchange.pdq_from_bytes(data)[0]


def _pdq(data: bytes, draft: int) -> str:
    return get_signal_type("pdq").compute(Media.from_bytes(data, hash_draft=draft))[0].value


@pytest.mark.parametrize("seed", [1, 2])
def test_exact_mode_is_the_reference_hash(seed: int) -> None:
    data = _photo(1200, 900, seed)
    assert _pdq(data, 0) == _reference(data)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_mode_drifts_little(seed: int) -> None:
    data = _photo(2400, 1800, seed)
    plane = Media.from_bytes(data, hash_draft=256).pdq_plane()
    assert plane is not None and plane.block == 4 and plane.pixels.shape == (450, 600)  # 1800/4 >= 256 > 1800/8
    assert hamming_hex(_pdq(data, 256), _reference(data)) <= 6


@pytest.mark.parametrize("size", [(1001, 777), (4000, 3000)])
def test_block_size_follows_the_draft_size_and_odd_sizes_round_up(size: tuple[int, int]) -> None:
    w, h = size
    data = _photo(w, h, 6)
    for draft, block in ((64, 8), (200, 2 if h < 1600 else 8), (10_000, None)):
        plane = Media.from_bytes(data, hash_draft=draft).pdq_plane()
        if block is None:
            assert plane is None
            continue
        assert plane is not None and plane.block == block
        assert plane.pixels.shape == (-(-h // block), -(-w // block))
        assert hamming_hex(_pdq(data, draft), _reference(data)) <= 12


def test_linear_form_at_full_resolution_is_the_reference_hash() -> None:
    """At block 1 the matrix form is PDQ's own filter: same bits, same quality, same dihedral order."""
    data = _photo(900, 700, 7, fmt="PNG")
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    plane = LumaPlane(pdqmath.luma_from_rgb(rgb), full_height=700, full_width=900)
    ref_bits, ref_quality = pdqhash.compute(rgb)
    assert pdqmath.pdq_plane_hex(plane) == (bits_to_hex(ref_bits), int(ref_quality))
    ref_dihedral, _ = pdqhash.compute_dihedral(rgb)
    assert [h for h, _ in pdqmath.pdq_plane_dihedral_hex(plane)] == [bits_to_hex(b) for b in ref_dihedral]


def test_dihedral_hashes_of_a_reduced_plane_match_the_transformed_image() -> None:
    data = _photo(2000, 1500, 8)
    media = Media.from_bytes(data, hash_draft=256)
    hashes = [h for h, _ in media_dihedral_hex(media)]
    rotated = Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_180)
    buf = io.BytesIO()
    rotated.save(buf, "JPEG", quality=95)
    rot_hash = _pdq(buf.getvalue(), 256)
    assert min(hamming_hex(rot_hash, h) for h in hashes) == hamming_hex(rot_hash, hashes[2]) <= 16


def test_cmyk_and_small_jpegs_use_the_full_decode() -> None:
    im = Image.open(io.BytesIO(_photo(1600, 1200, 9))).convert("CMYK")
    buf = io.BytesIO()
    im.save(buf, "JPEG")
    assert Media.from_bytes(buf.getvalue(), hash_draft=256).pdq_plane() is None
    assert Media.from_bytes(_photo(400, 300, 5), hash_draft=256).pdq_plane() is None


def test_fast_mode_leaves_other_formats_alone() -> None:
    data = _photo(1200, 900, 4, fmt="PNG")
    assert Media.from_bytes(data, hash_draft=256).pdq_plane() is None
    assert _pdq(data, 256) == _reference(data)


def test_setting_selects_the_mode() -> None:
    assert Settings().hash_draft == 256
    assert Settings(pdq_decode="exact").hash_draft == 0
    assert Settings(pdq_decode="fast", pdq_draft_size=128).hash_draft == 128
    with pytest.raises(ConfigError):
        _ = Settings(pdq_decode="quick").hash_draft
