"""Benign photo-like test images: smooth gradients, random shapes, a little sensor-like noise.

Pure noise would be a poor stand-in for photos (its PDQ hash is unstable and JPEG handles it badly);
these have the large smooth areas and edges that real photos have. Nothing here depicts anything.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def photo_like(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    bw, bh = max(64, width // 4), max(48, height // 4)
    y, x = np.mgrid[0:bh, 0:bw].astype(np.float32)
    base = np.empty((bh, bw, 3), dtype=np.float32)
    for c in range(3):
        a, b, k = rng.uniform(-1, 1, 3)
        base[..., c] = 128 + 90 * np.sin(a * x / bw * 3 + b * y / bh * 3 + k * 6)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(6, 18))):
        x0, y0 = int(rng.integers(0, bw)), int(rng.integers(0, bh))
        x1, y1 = x0 + int(rng.integers(bw // 12, bw // 2)), y0 + int(rng.integers(bh // 12, bh // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = int(rng.integers(3))
        if shape == 0:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif shape == 1:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            pts = [(int(rng.integers(0, bw)), int(rng.integers(0, bh))) for _ in range(int(rng.integers(3, 6)))]
            draw.polygon(pts, fill=colour)
    im = im.filter(ImageFilter.GaussianBlur(1.2)).resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(im).astype(np.int16)
    arr += rng.integers(-6, 7, size=(height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg_bytes(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def detailed(width: int, height: int, seed: int) -> Image.Image:
    """A harder case than :func:`photo_like`: hard-edged blocks, small text and strong pixel noise at full
    resolution, so reduced decodes lose real detail (JPEG also spends most of its bits on it)."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(200):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(2, max(3, width // 6))), y0 + int(rng.integers(2, max(3, height // 6)))
        draw.rectangle([x0, y0, x1, y1], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    for _ in range(100):
        draw.text((int(rng.integers(0, width)), int(rng.integers(0, height))), f"label {rng.integers(1000)}", fill=0)
    arr = np.asarray(im).astype(np.int16) + rng.integers(-25, 26, size=(height, width, 3), dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
