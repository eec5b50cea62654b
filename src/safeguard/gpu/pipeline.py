"""Bytes in, PDQ out, in batches: decode (nvJPEG or Pillow), bucket by size, hash on one device.

Images in a batch are grouped by exact shape and each group is hashed with one pair of batched matrix
products (:class:`~safeguard.gpu.pdq.TorchPDQ`); a media store of camera photos has few distinct sizes,
so the groups are large. CPU decoding runs in a thread pool (Pillow releases the GIL while decoding),
so it uses every core. Each input gets a result or the :class:`~safeguard.errors.SafeguardError` that
the same bytes would get from ``/v1/scan``: one bad file never fails a batch.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import torch

from safeguard.errors import SafeguardError
from safeguard.gpu.decode import NvJpegDecoder, Pixels, decode_cpu
from safeguard.gpu.device import describe_device, resolve_device
from safeguard.gpu.pdq import TorchPDQ, bits_to_hex

K = TypeVar("K")


@dataclass(frozen=True)
class PDQResult:
    hash: str
    quality: int
    #: with ``dihedral``: the eight variants (``variants[0] == hash``), in pdqhash's compute_dihedral order
    variants: tuple[str, ...] = ()


class BatchHasher:
    """PDQ of many images on one device (``auto``: CUDA when present, else the CPU)."""

    def __init__(
        self,
        device: str | torch.device = "auto",
        *,
        batch_size: int = 64,
        draft: int = 0,
        max_pixels: int = 100_000_000,
        decode_threads: int | None = None,
        nvjpeg: bool = True,
        dihedral: bool = False,
    ) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.batch_size = max(1, batch_size)
        #: CPU decoding only: JPEG DCT-scaled luma down to this short side (0: full decode)
        self.draft = draft
        self.max_pixels = max_pixels
        #: also compute the seven rotated and flipped variants of each hash (nearly free)
        self.dihedral = dihedral
        self.pdq = TorchPDQ(self.device)
        self.nvjpeg = NvJpegDecoder.for_device(self.device) if nvjpeg else None
        self._pool = ThreadPoolExecutor(decode_threads or min(16, os.cpu_count() or 1))

    def describe(self) -> str:
        decoder = "nvJPEG (torchvision) + Pillow fallback" if self.nvjpeg else "Pillow"
        return f"{describe_device(self.device)}; decode: {decoder}"

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> BatchHasher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode_one(self, data: bytes) -> Pixels | SafeguardError:
        try:
            return decode_cpu(data, max_pixels=self.max_pixels, draft=self.draft)
        except SafeguardError as exc:
            return exc

    def decode(self, datas: Sequence[bytes]) -> list[Pixels | SafeguardError]:
        """Each input -> its pixels (on the GPU when nvJPEG decoded them) or its error."""
        first: list[Pixels | SafeguardError | None] = [
            Pixels.of(r) if isinstance(r, torch.Tensor) else r
            for r in (self.nvjpeg.decode(list(datas), self.max_pixels) if self.nvjpeg else [None] * len(datas))
        ]
        rest = [i for i, r in enumerate(first) if r is None]
        for i, r in zip(rest, self._pool.map(self._decode_one, [datas[i] for i in rest]), strict=True):
            first[i] = r
        return [r for r in first if r is not None]

    def hash_pixels(self, images: Sequence[Pixels | torch.Tensor]) -> list[PDQResult]:
        """Images of any sizes -> PDQ results, hashing each same-shape group as one batch."""
        pixels = [im if isinstance(im, Pixels) else Pixels.of(im) for im in images]
        groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
        for i, px in enumerate(pixels):
            groups[(*px.data.shape, str(px.data.device), px.full)].append(i)
        out: list[PDQResult | None] = [None] * len(images)
        with torch.inference_mode():
            for idx in groups.values():
                batch = torch.stack([pixels[i].data for i in idx]).to(self.device)  # one copy per group
                full = pixels[idx[0]].full
                if self.dihedral:
                    bits, quality = self.pdq.hash_pixels_dihedral(batch, full)
                    hexes = bits_to_hex(bits)
                    for k, (i, q) in enumerate(zip(idx, quality.cpu().tolist(), strict=True)):
                        variants = tuple(hexes[8 * k : 8 * k + 8])
                        out[i] = PDQResult(variants[0], int(q), variants)
                    continue
                bits, quality = self.pdq.hash_pixels(batch, full)
                for i, h, q in zip(idx, bits_to_hex(bits), quality.cpu().tolist(), strict=True):
                    out[i] = PDQResult(h, int(q))
        return [r for r in out if r is not None]

    def hash_batch(self, datas: Sequence[bytes]) -> list[PDQResult | SafeguardError]:
        """Each input -> its PDQ hash and quality, or the error its bytes give."""
        decoded = self.decode(datas)
        hashed = iter(self.hash_pixels([d for d in decoded if isinstance(d, Pixels)]))
        return [d if isinstance(d, SafeguardError) else next(hashed) for d in decoded]

    def iter_hash(self, items: Iterable[tuple[K, bytes]]) -> Iterator[tuple[K, PDQResult | SafeguardError]]:
        """Stream (key, bytes) pairs through in batches of ``batch_size``; yields (key, result) in order."""
        keys: list[K] = []
        datas: list[bytes] = []
        for key, data in items:
            keys.append(key)
            datas.append(data)
            if len(datas) >= self.batch_size:
                yield from zip(keys, self.hash_batch(datas), strict=True)
                keys, datas = [], []
        if datas:
            yield from zip(keys, self.hash_batch(datas), strict=True)
