"""PDQ decode modes: ``exact`` is the reference's hash bit for bit; ``fast`` stays close to it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from safeguard.config import Settings
from safeguard.errors import ConfigError
from safeguard.media import Media
from safeguard.signals import get_signal_type
from safeguard.signals.base import hamming_hex


def _photo(w: int, h: int, seed: int, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    arr = np.stack(
        [128 + 90 * np.sin(rng.uniform(-3, 3) * x / w + rng.uniform(-3, 3) * y / h + c) for c in range(3)], 2
    )
    im = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        d.ellipse([x0, y0, x0 + w // 4, y0 + h // 4], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    buf = io.BytesIO()
    im.save(buf, fmt, quality=90) if fmt == "JPEG" else im.save(buf, fmt)
    return buf.getvalue()


def _reference(data: bytes) -> str:
    threatexchange = pytest.importorskip("threatexchange.signal_type.pdq.pdq_hasher")
    return threatexchange.pdq_from_bytes(data)[0]


def _pdq(data: bytes, draft: int) -> str:
    return get_signal_type("pdq").compute(Media.from_bytes(data, hash_draft=draft))[0].value


@pytest.mark.parametrize("seed", [1, 2])
def test_exact_mode_is_the_reference_hash(seed: int) -> None:
    data = _photo(1200, 900, seed)
    assert _pdq(data, 0) == _reference(data)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_mode_drifts_little(seed: int) -> None:
    data = _photo(2400, 1800, seed)
    media = Media.from_bytes(data, hash_draft=512)
    im = media.hash_image()
    assert im.mode == "L" and 512 <= min(im.size) < 1024  # DCT-scaled then box-reduced luma
    assert hamming_hex(_pdq(data, 512), _reference(data)) <= 16


def test_fast_mode_leaves_other_formats_alone() -> None:
    data = _photo(1200, 900, 4, fmt="PNG")
    assert _pdq(data, 512) == _reference(data)


def test_small_jpeg_is_not_scaled() -> None:
    media = Media.from_bytes(_photo(400, 300, 5), hash_draft=512)
    assert media.hash_image().size == (400, 300)


def test_setting_selects_the_mode() -> None:
    assert Settings().hash_draft == 512
    assert Settings(pdq_decode="exact").hash_draft == 0
    assert Settings(pdq_decode="fast", pdq_draft_size=256).hash_draft == 256
    with pytest.raises(ConfigError):
        _ = Settings(pdq_decode="quick").hash_draft
