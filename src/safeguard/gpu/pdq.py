"""PDQ in torch, batched: pdqhash's arithmetic written as matrix products, so it runs on a GPU.

PDQ turns an image into a 64x64 luminance buffer with two X,Y passes of 1-D box filters (Jarosz's
"fast image convolutions", a tent filter in the end) and then samples 64 rows and 64 columns. Every one
of those steps is linear and acts on one axis at a time, so for an H x W image the whole downsampling is

    buffer64 = A_h @ luma @ A_w.T      with A_h (64 x H) = sample_rows · box_H · box_H

and likewise A_w for the columns. The matrices are :func:`safeguard.signals.pdqmath.axis_weights`, the
same ones the CPU scan path uses (the reference's window sizes and edge handling), including their
block-summed form for a JPEG luma plane reduced by DCT scaling; a batch of same-size images is then two
batched matrix products, which is what a GPU is best at. The rest follows PDQ exactly: the 16x16 block of the
64x64 DCT-II that skips the DC row and column, the median (the 128th smallest of the 256 coefficients, as
Torben's method returns), one bit per coefficient above it, and the gradient-based quality.

The only difference from ``pdqhash`` is floating-point rounding (float32 products instead of the
reference's running float32 sums), which moves a coefficient by about 1e-5 of its size; a bit flips only
when a coefficient sits that close to the median. ``tests/gpu/test_pdq_torch.py`` measures the distance
from ``pdqhash`` on generated images.
"""

from __future__ import annotations

import numpy as np
import torch

from safeguard.signals.pdqmath import DCT16, axis_weights

LUMA = (0.299, 0.587, 0.114)  # PDQ's RGB to luminance weights
_MEDIAN_RANK = 128  # Torben's median of 256 values: the 128th smallest


class TorchPDQ:
    """Batched PDQ on one torch device. Thread-compatible: matrices are cached per (size, device)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._dct = torch.tensor(DCT16, dtype=torch.float32, device=self.device)
        self._mats: dict[tuple[int, int], torch.Tensor] = {}

    def _matrix(self, n: int, block: int = 1) -> torch.Tensor:
        m = self._mats.get((n, block))
        if m is None:
            if len(self._mats) > 256:
                self._mats.clear()
            m = torch.tensor(axis_weights(n, block), dtype=torch.float32, device=self.device)
            self._mats[(n, block)] = m
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

    def buffer64(self, luma: torch.Tensor, full: tuple[int, int, int] | None = None) -> torch.Tensor:
        """(N, h, w) luminance -> (N, 64, 64): PDQ's box-filtered, decimated buffer.

        ``full`` = (height, width, block) when the planes were reduced ``block`` times by DCT scaling
        from a (height x width) image: the weights are then the original size's, summed per block.
        """
        _, h, w = luma.shape
        fh, fw, block = full if full is not None else (h, w, 1)
        if (-(-fh // block), -(-fw // block)) != (h, w):
            raise ValueError(f"planes are {h}x{w}, not a {fh}x{fw} image reduced {block} times")
        with _full_float32():
            return self._matrix(fh, block) @ luma @ self._matrix(fw, block).T

    def hash_luma(
        self, luma: torch.Tensor, full: tuple[int, int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, H, W) luminance of same-size images -> ((N, 256) bool bits, (N,) int quality).

        Bits come in the order of pdqhash's vector (element m is coefficient 255 - m of the row-major
        16x16 DCT block), so :func:`bits_to_hex` writes the same hex as ``safeguard.signals.pdq``.
        """
        buf = self.buffer64(luma.to(self.device).float(), full)
        quality = quality_of(buf)
        with _full_float32():
            coeffs = (self._dct @ buf @ self._dct.T).reshape(buf.shape[0], 256).flip(1)
        median = coeffs.kthvalue(_MEDIAN_RANK, dim=1, keepdim=True).values
        return coeffs > median, quality

    def hash_pixels(
        self, pixels: torch.Tensor, full: tuple[int, int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) same-size images -> ((N, 256) bool bits, (N,) int quality)."""
        return self.hash_luma(self.luma(pixels), full)

    def hash_pixels_dihedral(
        self, pixels: torch.Tensor, full: tuple[int, int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) same-size images -> ((N, 8, 256) bool bits, (N,) int quality).

        The eight variants in pdqhash's ``compute_dihedral`` order: original, rotated 90, 180 and 270
        degrees, flipped in x and in y, and flipped about both diagonals. Rotating or flipping an image
        only transposes its DCT block and changes the sign of odd rows or columns, so the variants cost
        a few element-wise products, not seven more downsamplings (the reference does the same).
        """
        buf = self.buffer64(self.luma(pixels), full)
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
