"""vPDQ signal: per-frame hashes with timestamps, the compact form, and agreement with ``vpdq``."""

from __future__ import annotations

import importlib.util

import pytest

from safeguard.content import Signal
from safeguard.errors import InvalidInput
from safeguard.media import Media
from safeguard.media.video import hash_video
from safeguard.signals import compute_signals, get_signal_type
from safeguard.signals.base import hamming_hex
from safeguard.signals.vpdq import entry_rows, from_compact, to_compact
from tests.videogen import benign_image, make_video


def test_video_signals_are_per_frame_with_timestamps() -> None:
    data = make_video(seconds=3, fps=10)
    media = Media.from_bytes(data)
    assert media.is_video
    sigs = compute_signals(media)
    types = {s.type for s in sigs}
    assert types == {"sha256", "md5", "vpdq"}
    frames = [s for s in sigs if s.type == "vpdq"]
    assert [s.timestamp for s in frames] == [0.0, 1.0, 2.0]
    assert all(len(s.value) == 64 and s.quality is not None for s in frames)


@pytest.mark.parametrize(
    ("codec", "fmt", "mime"),
    [("libx264", "mp4", "video/mp4"), ("libvpx-vp9", "webm", "video/webm"), ("libx264", "mov", "video/quicktime")],
)
def test_containers(codec: str, fmt: str, mime: str) -> None:
    data = make_video(seconds=2, fps=10, codec=codec, fmt=fmt)
    media = Media.from_bytes(data)
    assert media.media_type == mime
    frames = get_signal_type("vpdq").compute(media)
    assert len(frames) == 2


def test_inserted_image_hash_is_close_to_the_image_hash() -> None:
    from safeguard.signals.pdq import pdq_hex

    img = benign_image(5)
    data = make_video(seconds=4, fps=10, insert=img, insert_at=(1.0, 3.0))
    frames = hash_video(data)
    ref, _ = pdq_hex(img.resize((192, 144)))
    dists = {f.timestamp: hamming_hex(f.value, ref) for f in frames}
    assert dists[1.0] <= 31 and dists[2.0] <= 31
    assert dists[0.0] > 31 and dists[3.0] > 31


def test_compact_round_trip_and_entry_rows() -> None:
    sigs = [Signal("vpdq", "ab" * 32, 90, 0.0), Signal("vpdq", "ab" * 32, 90, 1.0), Signal("vpdq", "cd" * 32, 10, 2.0)]
    again = from_compact(to_compact(sigs))
    assert [(s.value, s.quality, s.timestamp) for s in again] == [(s.value, s.quality, s.timestamp) for s in sigs]
    rows = entry_rows(sigs, video="v1")
    # one entry per distinct good-quality hash; the low-quality frame is left out
    assert rows == [("ab" * 32, {"video": "v1", "video_frames": 1, "timestamps": [0.0, 1.0]})]


@pytest.mark.parametrize("bad", ["{}", "[1]", '["zz,1,0"]', '["' + "ab" * 32 + ',101,0"]', "not json"])
def test_compact_rejects_bad_input(bad: str) -> None:
    with pytest.raises(InvalidInput):
        from_compact(bad)


@pytest.mark.skipif(importlib.util.find_spec("vpdq") is None, reason="the reference vpdq library is not installed")
def test_hashes_equal_the_reference_library(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import vpdq

    path = tmp_path / "clip.mp4"
    make_video(path, seconds=4, fps=15, size=(320, 240), insert=benign_image(2), insert_at=(1, 2))
    ours = hash_video(str(path))
    ref = vpdq.computeHash(str(path), seconds_per_hash=1.0)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        assert a.timestamp == pytest.approx(b.timestamp, abs=1e-3)
        assert a.quality == b.quality
        assert hamming_hex(a.value, b.hex) == 0
