"""Benign test video, generated with PyAV: moving gradients and shapes, optionally with a still image
inserted over a time range (the "banked" image a test then expects to be found)."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw


def benign_image(seed: int = 1, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinctive still: concentric shapes and text on a two-colour gradient."""
    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    c1, c2 = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    arr = (c1 * x + c2 * y) / 1.5
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(6):
        r = int(rng.integers(10, min(w, h) // 2))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    d.rectangle((w // 8, h // 8, w // 3, h // 2), fill=(250, 250, 250))
    d.text((w // 2, h // 2), f"TEST {seed}", fill=(0, 0, 0))
    return im


def moving_frame(i: int, fps: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    t = i / fps
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    r = 127 + 120 * np.sin(2 * np.pi * (x + 0.13 * t + seed * 0.1))
    g = 127 + 120 * np.sin(2 * np.pi * (y * 1.5 - 0.21 * t))
    b = 127 + 120 * np.cos(2 * np.pi * (x * y * 2 + 0.05 * t + seed))
    frame = np.stack([r + 0 * y, g + 0 * x, b], axis=-1)
    # a moving box, so consecutive seconds hash differently
    bx = int((0.5 + 0.4 * np.sin(t * 0.7 + seed)) * (width - width // 5))
    by = int((0.5 + 0.4 * np.cos(t * 0.9)) * (height - height // 5))
    frame[by : by + height // 5, bx : bx + width // 5] = (255 - 40 * (i % 3), 40, 200)
    return np.clip(frame, 0, 255).astype(np.uint8)


def make_video(
    path: str | Path | None = None,
    *,
    seconds: float = 4.0,
    fps: int = 15,
    size: tuple[int, int] = (192, 144),
    codec: str = "libx264",
    fmt: str = "mp4",
    insert: Image.Image | None = None,
    insert_at: tuple[float, float] = (0.0, 0.0),
    gop: int | None = None,
    seed: int = 0,
) -> bytes:
    """Encode a clip; frames whose time falls in ``insert_at`` show ``insert`` (resized) full-frame."""
    w, h = size
    buf = io.BytesIO()
    out = av.open(str(path) if path else buf, mode="w", format=fmt)
    st = out.add_stream(codec, rate=fps)
    st.width, st.height = w, h
    st.pix_fmt = "yuv420p"
    st.codec_context.gop_size = gop or fps
    if codec == "libx264":
        st.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
    st.codec_context.time_base = Fraction(1, fps)
    ins = np.asarray(insert.convert("RGB").resize((w, h))) if insert is not None else None
    for i in range(int(seconds * fps)):
        t = i / fps
        arr = ins if ins is not None and insert_at[0] <= t < insert_at[1] else moving_frame(i, fps, w, h, seed)
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        for p in st.encode(frame):
            out.mux(p)
    for p in st.encode(None):
        out.mux(p)
    out.close()
    if path:
        return Path(path).read_bytes()
    return buf.getvalue()
