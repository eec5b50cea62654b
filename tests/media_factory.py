"""Benign generated test media: gradients, shapes and noise. Nothing else is ever used in tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def make_image(seed: int = 0, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A photo-like benign image: a smooth gradient, a few shapes, a little noise. Distinct per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    c1, c2, c3 = rng.uniform(0, 255, (3, 3))
    arr = c1 * x + c2 * y + c3 * (1 - x) * (1 - y)
    arr = np.clip(arr / arr.max() * 255, 0, 255)
    im = Image.fromarray(arr.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    for _ in range(24):
        x0, y0 = rng.integers(0, w - 10), rng.integers(0, h - 10)
        x1, y1 = x0 + rng.integers(8, w // 3), y0 + rng.integers(8, h // 3)
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            d.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            d.rectangle((x0, y0, x1, y1), fill=colour)
    noise = rng.normal(0, 4, (h, w, 3))
    out = np.clip(np.asarray(im, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def encode(im: Image.Image, fmt: str = "JPEG", **kw: object) -> bytes:
    buf = io.BytesIO()
    if fmt == "GIF":
        im = im.convert("P", palette=Image.Palette.ADAPTIVE)
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def image_bytes(seed: int = 0, fmt: str = "JPEG", size: tuple[int, int] = (320, 240)) -> bytes:
    return encode(make_image(seed, size), fmt)


def animation_bytes(frames: list[Image.Image], fmt: str = "GIF", **kw: object) -> bytes:
    """An animated (GIF, WebP, PNG: APNG, AVIF) or multi-frame (TIFF, HEIF, MPO) file of ``frames``."""
    buf = io.BytesIO()
    if fmt == "GIF":
        frames = [f.convert("P", palette=Image.Palette.ADAPTIVE) for f in frames]
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], **({"duration": 100} | kw))
    return buf.getvalue()


def heif_bytes(seed: int = 1, fmt: str = "AVIF", size: tuple[int, int] = (320, 240)) -> bytes:
    """A benign image as AVIF or HEIF (through pillow-heif's encoder)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encode(make_image(seed, size), fmt)
