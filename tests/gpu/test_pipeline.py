"""Bytes to PDQ in batches: same hashes as the scan path's PDQ signal, errors per file, devices."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from safeguard.errors import ConfigError, SafeguardError  # noqa: E402
from safeguard.gpu.decode import NvJpegDecoder, Pixels  # noqa: E402
from safeguard.gpu.device import describe_device, resolve_device  # noqa: E402
from safeguard.gpu.pipeline import BatchHasher, PDQResult  # noqa: E402
from safeguard.media import Media  # noqa: E402
from safeguard.signals import get_signal_type  # noqa: E402
from safeguard.signals.base import hamming_hex  # noqa: E402
from tests.media_factory import image_bytes  # noqa: E402


def _cpu_pdq(data: bytes, draft: int = 0) -> tuple[str, int]:
    sig = get_signal_type("pdq").compute(Media.from_bytes(data, hash_draft=draft))[0]
    return sig.value, int(sig.quality or 0)


def test_mixed_batch_matches_the_scan_path() -> None:
    datas = [image_bytes(s, size=(640, 480)) for s in range(5)]
    datas += [image_bytes(s, "PNG") for s in (5, 6)] + [image_bytes(7, "GIF"), image_bytes(8, "WEBP")]
    datas += [b"not an image", b"", image_bytes(9)[:300]]
    with BatchHasher("cpu", batch_size=4) as hasher:
        results = [r for _, r in hasher.iter_hash(enumerate(datas))]
    assert len(results) == len(datas)
    for data, r in zip(datas[:9], results[:9], strict=True):
        assert isinstance(r, PDQResult)
        ref_hash, ref_quality = _cpu_pdq(data)
        assert hamming_hex(ref_hash, r.hash) <= 2 and abs(ref_quality - r.quality) <= 1
    codes = [r.code if isinstance(r, SafeguardError) else None for r in results[9:]]
    assert codes == ["unsupported_media_type", "empty_media", "corrupt_media"]


def test_fast_decode_matches_the_scan_paths_fast_mode() -> None:
    datas = [image_bytes(s, size=(1600, 1200)) for s in range(3)]
    with BatchHasher("cpu", draft=256) as hasher:
        decoded = hasher.decode(datas)
        results = hasher.hash_batch(datas)
    # the reduced luma plane (1/4 here) travels with the size it stands for
    assert all(isinstance(d, Pixels) and d.block == 4 and d.data.shape == (1, 300, 400) for d in decoded)
    for data, r in zip(datas, results, strict=True):
        assert isinstance(r, PDQResult)
        assert hamming_hex(_cpu_pdq(data, 256)[0], r.hash) <= 2


def test_pixel_limit_is_enforced() -> None:
    with BatchHasher("cpu", max_pixels=100 * 100) as hasher:
        (r,) = hasher.hash_batch([image_bytes(1, size=(320, 240))])
    assert isinstance(r, SafeguardError) and r.code == "too_many_pixels"
    with pytest.raises(SafeguardError) as exc:
        NvJpegDecoder.check_header(image_bytes(1, size=(320, 240)), 100 * 100)
    assert exc.value.code == "too_many_pixels"


def test_devices() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert "cpu" in describe_device(resolve_device("cpu"))
    assert NvJpegDecoder.for_device(torch.device("cpu")) is None
    for bad in ("tpu", "nonsense"):
        with pytest.raises(ConfigError):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")
