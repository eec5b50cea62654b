"""PDQ in torch, batched: pdqhash's arithmetic written as matrix products, so it runs on a GPU.

PDQ turns an image into a 64x64 luminance buffer with two X,Y passes of 1-D box filters (Jarosz's
"fast image convolutions", a tent filter in the end) and then samples 64 rows and 64 columns. Every one
of those steps is linear and acts on one axis at a time, so for an H x W image the whole downsampling is

    buffer64 = A_h @ luma @ A_w.T      with A_h (64 x H) = sample_rows · box_H · box_H

and likewise A_w for the columns. A and its box filters are built once per image size (in float64, with
the reference's window sizes and edge handling: a window of ``ceil(n / 128)`` pixels per pass, averaged
over the pixels that exist at the borders) and cached; a batch of same-size images is then two batched
matrix products, which is what a GPU is best at. The rest follows PDQ exactly: the 16x16 block of the
64x64 DCT-II that skips the DC row and column, the median (the 128th smallest of the 256 coefficients, as
Torben's method returns), one bit per coefficient above it, and the gradient-based quality.

The only difference from ``pdqhash`` is floating-point rounding (float32 products instead of the
reference's running float32 sums), which moves a coefficient by about 1e-5 of its size; a bit flips only
when a coefficient sits that close to the median. ``tests/gpu/test_pdq_torch.py`` measures the distance
from ``pdqhash`` on generated images.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

LUMA = (0.299, 0.587, 0.114)  # PDQ's RGB to luminance weights
_WINDOW_DIVISOR = 128  # two passes of n/128 make one 64th of the image: a full output cell
_MEDIAN_RANK = 128  # Torben's median of 256 values: the 128th smallest


def window_size(n: int) -> int:
    """PDQ's box-filter window for a dimension of ``n`` pixels: n / 128, rounded up."""
    return (n + _WINDOW_DIVISOR - 1) // _WINDOW_DIVISOR


def _box_bounds(n: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last input index each output of PDQ's 1-D box filter averages.

    The reference's window reaches ``w - (w + 2) // 2`` pixels back and ``(w + 2) // 2 - 1`` ahead
    (3 and 3 for a window of 7, 3 and 4 for 8) and is cut short at the borders.
    """
    half = (w + 2) // 2
    o = np.arange(n)
    return np.maximum(o - (w - half), 0), np.minimum(o + half - 1, n - 1)


def _apply_box_on_right(m: np.ndarray, w: int) -> np.ndarray:
    """``m @ box`` for PDQ's (n x n) box-filter matrix, without building the matrix.

    Row o of ``box`` holds ``1/count`` on columns lo[o]..hi[o]; so ``m @ box`` adds each ``m[:, o] /
    count`` to a column range: a difference array and a cumulative sum, O(rows x n).
    """
    n = m.shape[1]
    lo, hi = _box_bounds(n, w)
    weighted = (m / (hi - lo + 1)[None, :]).T  # (n, rows)
    diff = np.zeros((n + 1, m.shape[0]))
    np.add.at(diff, lo, weighted)
    np.add.at(diff, hi + 1, -weighted)
    out: np.ndarray = np.cumsum(diff, axis=0)[:n].T
    return np.ascontiguousarray(out)


@lru_cache(maxsize=64)
def downsample_matrix(n: int) -> np.ndarray:
    """The (64 x n) float64 matrix that takes one axis of n pixels to PDQ's 64 samples."""
    if n < 1:
        raise ValueError("dimension must be positive")
    w = window_size(n)
    rows = ((2 * np.arange(64) + 1) * n) // 128  # int((i + 0.5) * n / 64), in exact integers
    m = np.zeros((64, n))
    m[np.arange(64), rows] = 1.0
    for _ in range(2):  # two passes along this axis; the other axis's passes commute with these
        m = _apply_box_on_right(m, w)
    m.setflags(write=False)
    return m


@lru_cache(maxsize=1)
def dct_matrix() -> np.ndarray:
    """PDQ's 16 x 64 DCT-II rows 1..16 (the DC row 0 is skipped), scaled by sqrt(2/64)."""
    i = np.arange(1, 17)[:, None]
    j = np.arange(64)[None, :]
    d: np.ndarray = math.sqrt(2.0 / 64.0) * np.cos(math.pi / 2 / 64.0 * i * (2 * j + 1))
    d.setflags(write=False)
    return d


class TorchPDQ:
    """Batched PDQ on one torch device. Thread-compatible: matrices are cached per (size, device)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._dct = torch.tensor(dct_matrix(), dtype=torch.float32, device=self.device)
        self._mats: dict[int, torch.Tensor] = {}

    def _matrix(self, n: int) -> torch.Tensor:
        m = self._mats.get(n)
        if m is None:
            if len(self._mats) > 256:
                self._mats.clear()
            m = torch.tensor(downsample_matrix(n), dtype=torch.float32, device=self.device)
            self._mats[n] = m
        return m

    def luma(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) uint8 or float pixels, C = 3 (RGB) or 1 (already luminance) -> (N, H, W) float32."""
        x = pixels.to(self.device, non_blocking=True)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected (N, 1 or 3, H, W) pixels, got {tuple(x.shape)}")
        if x.shape[1] == 1:
            return x[:, 0].float()
        r, g, b = LUMA
        out = x[:, 0].float().mul_(r)  # one channel at a time: no (N, 3, H, W) float copy
        out.add_(x[:, 1].float(), alpha=g)
        return out.add_(x[:, 2].float(), alpha=b)

    def buffer64(self, luma: torch.Tensor) -> torch.Tensor:
        """(N, H, W) luminance -> (N, 64, 64): PDQ's box-filtered, decimated buffer."""
        _, h, w = luma.shape
        with _full_float32():
            return self._matrix(h) @ luma @ self._matrix(w).T

    def hash_luma(self, luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, H, W) luminance of same-size images -> ((N, 256) bool bits, (N,) int quality).

        Bits come in the order of pdqhash's vector (element m is coefficient 255 - m of the row-major
        16x16 DCT block), so :func:`bits_to_hex` writes the same hex as ``safeguard.signals.pdq``.
        """
        buf = self.buffer64(luma.to(self.device).float())
        quality = quality_of(buf)
        with _full_float32():
            coeffs = (self._dct @ buf @ self._dct.T).reshape(buf.shape[0], 256).flip(1)
        median = coeffs.kthvalue(_MEDIAN_RANK, dim=1, keepdim=True).values
        return coeffs > median, quality

    def hash_pixels(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) same-size images -> ((N, 256) bool bits, (N,) int quality)."""
        return self.hash_luma(self.luma(pixels))

    def hash_pixels_dihedral(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) same-size images -> ((N, 8, 256) bool bits, (N,) int quality).

        The eight variants in pdqhash's ``compute_dihedral`` order: original, rotated 90, 180 and 270
        degrees, flipped in x and in y, and flipped about both diagonals. Rotating or flipping an image
        only transposes its DCT block and changes the sign of odd rows or columns, so the variants cost
        a few element-wise products, not seven more downsamplings (the reference does the same).
        """
        buf = self.buffer64(self.luma(pixels))
        quality = quality_of(buf)
        with _full_float32():
            c = self._dct @ buf @ self._dct.T  # (N, 16, 16)
        odd = torch.arange(16, device=c.device) % 2 == 1
        s = torch.where(odd, 1.0, -1.0)  # +1 on odd frequencies, -1 on even ones
        si, sj = s.view(16, 1), s.view(1, 16)
        sij = torch.where(odd.view(16, 1) ^ odd.view(1, 16), -1.0, 1.0)
        variants = [c, _t(c * sj), c * sij, _t(c * si), c * si, c * sj, _t(c), _t(c * sij)]
        coeffs = torch.stack(variants, dim=1).reshape(c.shape[0], 8, 256).flip(-1)
        median = coeffs.kthvalue(_MEDIAN_RANK, dim=2, keepdim=True).values
        return coeffs > median, quality


def _t(m: torch.Tensor) -> torch.Tensor:
    return m.transpose(-1, -2)


def quality_of(buf: torch.Tensor) -> torch.Tensor:
    """PDQ's quality (0-100) from (N, 64, 64) buffers: the sum of quantised neighbour gradients / 90."""
    dy = torch.trunc((buf[:, :-1, :] - buf[:, 1:, :]) * 100 / 255).abs().sum(dim=(1, 2))
    dx = torch.trunc((buf[:, :, :-1] - buf[:, :, 1:]) * 100 / 255).abs().sum(dim=(1, 2))
    return torch.clamp(torch.div(dy + dx, 90, rounding_mode="floor"), max=100).to(torch.int32)


def bits_to_hex(bits: torch.Tensor) -> list[str]:
    """(N, 256) bool bits, bit 0 most significant -> 64-character hex strings."""
    packed = np.packbits(bits.to("cpu", torch.uint8).numpy().reshape(-1, 256), axis=1)
    return [row.tobytes().hex() for row in packed]


class _full_float32:
    """Keep float32 matrix products in full precision on GPUs that would use TF32 (10-bit mantissas)."""

    def __enter__(self) -> None:
        self._prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc: object) -> None:
        torch.backends.cuda.matmul.allow_tf32 = self._prev
