"""The torch PDQ against ``pdqhash`` on the same decoded pixels: distance, quality, batching."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safeguard.gpu.pdq import TorchPDQ, bits_to_hex  # noqa: E402
from safeguard.signals.base import hamming_hex  # noqa: E402
from safeguard.signals.pdq import pdq_hex  # noqa: E402
from safeguard.signals.pdqmath import axis_weights, window_size  # noqa: E402
from tests.media_factory import make_image  # noqa: E402

SIZES = [(320, 240), (640, 360), (97, 61), (300, 500), (40, 30)]


def _pixels(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)


def test_window_sizes_follow_pdq() -> None:
    assert [window_size(n) for n in (1, 64, 128, 129, 720, 1280, 4000)] == [1, 1, 1, 2, 6, 10, 32]


def test_downsample_rows_are_averages() -> None:
    # every output sample is a weighted average of input pixels: rows sum to one, weights >= 0
    for n in (7, 64, 720, 1283):
        m = axis_weights(n)
        assert m.shape == (64, n)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-5)
        assert (m >= -1e-7).all()


def test_drift_from_pdqhash_on_generated_images() -> None:
    hasher = TorchPDQ("cpu")
    drift, quality_gap = [], []
    for seed in range(8):
        for size in SIZES:
            im = make_image(seed, size)
            ref_hex, ref_quality = pdq_hex(im)
            bits, quality = hasher.hash_pixels(_pixels(np.asarray(im)))
            drift.append(hamming_hex(ref_hex, bits_to_hex(bits)[0]))
            quality_gap.append(abs(int(quality[0]) - ref_quality))
    # target from issue 3: mean <= 2 bits; the arithmetic is the reference's, so it is (almost) always 0
    assert np.mean(drift) <= 2.0, drift
    assert max(drift) <= 8, drift
    assert max(quality_gap) <= 1, quality_gap


def test_batch_equals_one_by_one_and_luma_input() -> None:
    hasher = TorchPDQ("cpu")
    arrs = [np.asarray(make_image(seed, (200, 150))) for seed in range(5)]
    batch = torch.cat([_pixels(a) for a in arrs])
    bits, quality = hasher.hash_pixels(batch)
    for k, a in enumerate(arrs):
        b1, q1 = hasher.hash_pixels(_pixels(a))
        assert torch.equal(b1[0], bits[k]) and int(q1[0]) == int(quality[k])
    # a one-channel input is taken as luminance, as pdqhash takes a grey image
    grey = np.asarray(make_image(3, (200, 150)).convert("L"))
    ref_hex, _ = pdq_hex(make_image(3, (200, 150)).convert("L"))
    gbits, _ = hasher.hash_pixels(torch.from_numpy(grey.copy())[None, None])
    assert hamming_hex(ref_hex, bits_to_hex(gbits)[0]) <= 2


def test_hash_has_half_its_bits_set_and_flat_image_has_low_quality() -> None:
    hasher = TorchPDQ("cpu")
    bits, _ = hasher.hash_pixels(_pixels(np.asarray(make_image(1, (320, 240)))))
    assert int(bits.sum()) == 128  # above the 128th smallest of 256 distinct coefficients
    flat = torch.full((1, 3, 100, 100), 128, dtype=torch.uint8)
    _, q = hasher.hash_pixels(flat)
    assert int(q[0]) == 0


def test_bad_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        TorchPDQ("cpu").hash_pixels(torch.zeros((1, 2, 10, 10), dtype=torch.uint8))


def test_dihedral_variants_match_pdqhash() -> None:
    from safeguard.signals.pdq import pdq_dihedral_hex

    hasher = TorchPDQ("cpu")
    for seed, size in [(1, (320, 240)), (2, (203, 311)), (3, (64, 64))]:
        im = make_image(seed, size)
        ref = pdq_dihedral_hex(im)
        bits, quality = hasher.hash_pixels_dihedral(_pixels(np.asarray(im)))
        assert bits.shape == (1, 8, 256)
        got = bits_to_hex(bits[0])
        assert [hamming_hex(a, b) for (a, _), b in zip(ref, got, strict=True)] == [0] * 8
        assert abs(int(quality[0]) - ref[0][1]) <= 1
        plain, _ = hasher.hash_pixels(_pixels(np.asarray(im)))
        assert torch.equal(plain[0], bits[0, 0])
