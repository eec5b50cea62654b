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
