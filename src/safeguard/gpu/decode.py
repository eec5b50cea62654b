"""Decoding for the batched hasher: nvJPEG on the GPU where it can, Pillow through ``safeguard.media``
everywhere else.

The GPU decoder is torchvision's ``decode_jpeg(..., device="cuda")``, which hands a whole list of JPEGs
to nvJPEG at once. It is used only when torchvision imports beside torch and CUDA is present (PyPI's
torchvision wheels do not import beside a CPU-only torch build, so a CPU install simply never takes this
branch). Before any pixel is decoded, each JPEG's header is read with Pillow and checked against
``max_pixels``: the same decompression-bomb guard an upload gets. A JPEG nvJPEG refuses (CMYK, an
unusual sampling, a truncated file) falls back to the CPU decoder, which then gives the precise error.

The CPU decoder decodes as a scan does for PDQ (``Media.pdq_plane``, else the full decode), so ``draft``
(JPEG DCT scaling of the luma plane, ``SAFEGUARD_PDQ_DRAFT_SIZE``) behaves as it does there.
The GPU always decodes in full: it is cheap there, and it keeps the hash closest to the reference.
"""

from __future__ import annotations

import importlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from safeguard.errors import MediaError, SafeguardError, UnsupportedMedia
from safeguard.media import Media
from safeguard.media.decode import check_pixels, sniff_media_type


@dataclass(frozen=True)
class Pixels:
    """(C, h, w) uint8 pixels, C = 3 (RGB) or 1 (luma), and the image size they stand for: ``block`` > 1
    when a JPEG's luma plane was reduced by DCT scaling (see ``Media.pdq_plane``)."""

    data: torch.Tensor
    full_height: int
    full_width: int
    block: int = 1

    @classmethod
    def of(cls, t: torch.Tensor) -> Pixels:
        return cls(t, int(t.shape[-2]), int(t.shape[-1]))

    @property
    def full(self) -> tuple[int, int, int]:
        return self.full_height, self.full_width, self.block


def decode_cpu(data: bytes, *, max_pixels: int, draft: int = 0) -> Pixels:
    """Image bytes -> pixels on the CPU, decoded as a scan decodes them for PDQ. Raises SafeguardError."""
    media = Media.from_bytes(data, max_pixels=max_pixels, hash_draft=draft)
    if not media.is_image:
        raise UnsupportedMedia(f"{media.media_type} is not an image")
    plane = media.pdq_plane()
    if plane is not None:
        t = torch.from_numpy(np.array(plane.pixels, dtype=np.uint8, copy=True)).unsqueeze(0)
        return Pixels(t, plane.full_height, plane.full_width, plane.block)
    t = torch.from_numpy(np.array(np.asarray(media.image()), dtype=np.uint8, copy=True))
    return Pixels.of(t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous())


def _torchvision_io() -> Any | None:
    try:
        return importlib.import_module("torchvision.io")
    except Exception:  # absent, or a wheel built against another torch: both mean "no nvJPEG here"
        return None


class NvJpegDecoder:
    """Batched JPEG decoding on a CUDA device with nvJPEG (through torchvision)."""

    def __init__(self, device: torch.device, tvio: Any) -> None:
        self.device = device
        self._tvio = tvio

    @classmethod
    def for_device(cls, device: torch.device) -> NvJpegDecoder | None:
        """A decoder when ``device`` is CUDA and torchvision's decode_jpeg is there, else None."""
        if device.type != "cuda":
            return None
        tvio = _torchvision_io()
        if tvio is None or not hasattr(tvio, "decode_jpeg"):
            return None
        return cls(device, tvio)

    @staticmethod
    def check_header(data: bytes, max_pixels: int) -> None:
        """Raise MediaError when the JPEG's declared size is over ``max_pixels`` (no pixels decoded)."""
        try:
            im = Image.open(io.BytesIO(data))
        except Exception as exc:
            raise MediaError(f"image could not be decoded: {exc}", code="corrupt_media") from exc
        with im:
            check_pixels(im, max_pixels)

    def decode(self, datas: list[bytes], max_pixels: int) -> list[torch.Tensor | SafeguardError | None]:
        """Each JPEG -> (3, H, W) uint8 on the device, a SafeguardError (over the pixel limit), or None:
        not decoded here (not a JPEG, or nvJPEG refused it), so the caller decodes it on the CPU."""
        out: list[torch.Tensor | SafeguardError | None] = [None] * len(datas)
        todo: list[int] = []
        for i, data in enumerate(datas):
            if sniff_media_type(data) != "image/jpeg":
                continue
            try:
                self.check_header(data, max_pixels)
            except SafeguardError as exc:
                out[i] = exc
                continue
            todo.append(i)
        if not todo:
            return out
        mode = self._tvio.ImageReadMode.RGB
        inputs = [torch.frombuffer(bytearray(datas[i]), dtype=torch.uint8) for i in todo]
        try:
            images = self._tvio.decode_jpeg(inputs, mode=mode, device=self.device)
        except (RuntimeError, TypeError, ValueError):
            # one bad file fails the whole batch (and torchvision before 0.19 takes no lists): one by
            # one, leaving the files nvJPEG refuses to the CPU decoder
            images = []
            for t in inputs:
                try:
                    images.append(self._tvio.decode_jpeg(t, mode=mode, device=self.device))
                except (RuntimeError, TypeError, ValueError):
                    images.append(None)
        for i, im in zip(todo, images, strict=True):
            out[i] = im
        return out
