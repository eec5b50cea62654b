"""PDQ from a luma plane as two small matrix products, at full or at JPEG-DCT-reduced resolution.

Everything PDQ does before its DCT is linear: luma, two passes of a horizontal and a vertical box
filter (Jarosz's tent), then sampling 64x64 points. So the 64x64 buffer the reference hashes is
``A @ Y @ B.T``, where ``A`` (64 x rows) and ``B`` (64 x columns) are the filter-and-sample weights
along each axis. They depend only on the image size and are cached.

That opens a faster decode. A JPEG decoder can hand back the luma plane reduced 2, 4 or 8 times by
DCT scaling, without inverse-transforming the full image; each reduced pixel is close to the mean of
its ``k x k`` block. Summing the full-resolution weights over each block gives weights on the reduced
grid, so the product still approximates *the reference's own filter at the original size*: the
drift from the reference hash is a few bits (measured in docs/performance.md), far smaller than
hashing the reduced image as if it were the original (PDQ would then pick filter windows for the
smaller size).

The DCT, the median threshold, the quality metric and the bit order follow the reference
implementation, so at ``block == 1`` on the same luma the hash is the reference's (tested). The
dihedral variants (rotations and flips) are sign changes and transposes of the 16x16 DCT.
"""

from __future__ import annotations

import functools

import numpy as np
from threadpoolctl import threadpool_limits

from safeguard.media import LumaPlane

# Where numpy was loaded before safeguard (so the environment defaults in safeguard/__init__.py came
# too late), keep its BLAS to one thread: these products are small, and a busy-waiting pool of BLAS
# threads is slower than one thread under load.
threadpool_limits(limits=1, user_api="blas")

#: the reference's window divisor: each box pass spans ceil(n / 128) pixels, two passes a 64th
JAROSZ_DIVISOR = 128
MIN_HASHABLE_DIM = 5


def window_size(n: int) -> int:
    """PDQ's box-filter window for an axis of ``n`` pixels: n / 128, rounded up."""
    return (n + JAROSZ_DIVISOR - 1) // JAROSZ_DIVISOR


def _box_bounds(n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive input range each output of the reference's 1-D box filter averages (edges shrink).

    The window reaches ``w - (w + 2) // 2`` pixels back and ``(w + 2) // 2 - 1`` ahead (3 and 3 for a
    window of 7, 3 and 4 for 8) and is cut short at the borders.
    """
    half = (window + 2) // 2
    out = np.arange(n)
    return np.maximum(0, out - (window - half)), np.minimum(n - 1, out + half - 1)


def _apply_box_on_right(m: np.ndarray, window: int) -> np.ndarray:
    """``m @ box`` for the reference's (n x n) box-filter matrix, without building it: row o of ``box``
    holds ``1/count`` on columns lo[o]..hi[o], so each ``m[:, o] / count`` is added to a column range
    (a difference array and a cumulative sum)."""
    n = m.shape[1]
    lo, hi = _box_bounds(n, window)
    weighted = (m / (hi - lo + 1)[None, :]).T
    diff = np.zeros((n + 1, m.shape[0]))
    np.add.at(diff, lo, weighted)
    np.add.at(diff, hi + 1, -weighted)
    return np.ascontiguousarray(np.cumsum(diff, axis=0)[:n].T)


@functools.lru_cache(maxsize=128)
def axis_weights(n: int, block: int = 1) -> np.ndarray:
    """64 x ceil(n / block) float32 weights: two box passes and 64-point sampling along an axis of ``n``
    pixels, summed over blocks of ``block`` pixels when the plane was reduced by DCT scaling."""
    if n < 1 or block < 1:
        raise ValueError("dimension and block must be positive")
    full = np.zeros((64, n))
    full[np.arange(64), ((2 * np.arange(64) + 1) * n) // 128] = 1.0  # int((i + 0.5) * n / 64): pixel centres
    for _ in range(2):  # two passes along this axis; the other axis' passes commute with these
        full = _apply_box_on_right(full, window_size(n))
    if block > 1:
        m = -(-n // block)
        reduced = np.zeros((m, 64))
        np.add.at(reduced, np.minimum(np.arange(n) // block, m - 1), full.T)
        full = reduced.T
    out = np.ascontiguousarray(full, dtype=np.float32)
    out.setflags(write=False)
    return out


def _dct_matrix() -> np.ndarray:
    i = np.arange(1, 17, dtype=np.float64)[:, None]
    j = np.arange(64, dtype=np.float64)[None, :]
    d = np.sqrt(2.0 / 64) * np.cos((np.pi / 2 / 64) * i * (2 * j + 1))
    return d.astype(np.float32)


DCT16 = _dct_matrix()


def buffer64(plane: LumaPlane) -> np.ndarray:
    """The 64x64 image-domain buffer the reference computes before its DCT."""
    y = np.asarray(plane.pixels, dtype=np.float32)
    rows, cols = -(-plane.full_height // plane.block), -(-plane.full_width // plane.block)
    if y.shape != (rows, cols):
        raise ValueError(f"plane is {y.shape}, expected {(rows, cols)} for block {plane.block}")
    a = axis_weights(plane.full_height, plane.block)
    b = axis_weights(plane.full_width, plane.block)
    return (a @ y) @ b.T


def quality(buf: np.ndarray) -> int:
    """The reference's gradient-count quality (0-100)."""
    dv = np.trunc((buf[:-1, :] - buf[1:, :]) * np.float32(100) / np.float32(255))
    dh = np.trunc((buf[:, :-1] - buf[:, 1:]) * np.float32(100) / np.float32(255))
    return min(100, int(np.abs(dv).sum() + np.abs(dh).sum()) // 90)


def _bits_hex(dct: np.ndarray) -> str:
    flat = dct.ravel()
    median = np.partition(flat, 127)[127]  # the lower median of 256, as the reference's Torben select
    bits = (flat > median)[::-1]  # the reference's bit 255 is the hex string's first bit
    return np.packbits(bits).tobytes().hex()


def dct16(buf: np.ndarray) -> np.ndarray:
    return DCT16 @ buf @ DCT16.T


def pdq_plane_hex(plane: LumaPlane) -> tuple[str, int]:
    """PDQ hash (64 hex characters) and quality of a luma plane."""
    if plane.full_height < MIN_HASHABLE_DIM or plane.full_width < MIN_HASHABLE_DIM:
        return "0" * 64, 0
    buf = buffer64(plane)
    return _bits_hex(dct16(buf)), quality(buf)


# Sign patterns of the 16x16 DCT under the dihedral group (the DCT basis' parity along each axis).
_ODD_I = (np.arange(16) % 2 == 1)[:, None]
_ODD_J = (np.arange(16) % 2 == 1)[None, :]


def dihedral_dcts(d: np.ndarray) -> list[np.ndarray]:
    """The 16x16 DCT of the original, rot90, rot180, rot270, flip-x, flip-y, flip+1, flip-1 images."""
    odd_sum = _ODD_I ^ _ODD_J
    return [
        d,
        np.where(_ODD_J, d, -d).T,
        np.where(odd_sum, -d, d),
        np.where(_ODD_I, d, -d).T,
        np.where(_ODD_I, d, -d),
        np.where(_ODD_J, d, -d),
        d.T,
        np.where(odd_sum, -d, d).T,
    ]


def pdq_plane_dihedral_hex(plane: LumaPlane) -> list[tuple[str, int]]:
    """The eight dihedral PDQ hashes of a luma plane (same order as ``pdqhash.compute_dihedral``)."""
    if plane.full_height < MIN_HASHABLE_DIM or plane.full_width < MIN_HASHABLE_DIM:
        return [("0" * 64, 0)] * 8
    buf = buffer64(plane)
    q = quality(buf)
    return [(_bits_hex(v), q) for v in dihedral_dcts(dct16(buf))]


def luma_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """The reference's luma (Rec. 601 weights) of an RGB array, as float32."""
    a = np.asarray(rgb, dtype=np.float32)
    return a[..., 0] * np.float32(0.299) + a[..., 1] * np.float32(0.587) + a[..., 2] * np.float32(0.114)
