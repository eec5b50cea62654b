"""The frame sampler decodes only what it must: keyframes, everything, or keyframes until they are sparse."""

from __future__ import annotations

import pytest

from safeguard.errors import MediaError
from safeguard.media.video import hash_video
from tests.videogen import make_video


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("all", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
        ("keyframes", [0.0, 3.0, 6.0]),  # keyframes every 3 s
        ("auto", [0.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),  # all frames once keyframes proved sparse
    ],
)
def test_decode_modes(mode: str, expected: list[float]) -> None:
    data = make_video(seconds=9, fps=5, gop=15)
    assert [f.timestamp for f in hash_video(data, mode=mode)] == expected  # type: ignore[arg-type]


def test_keyframe_hashes_equal_full_decode_hashes() -> None:
    data = make_video(seconds=4, fps=5, gop=5)
    full = {f.timestamp: f.value for f in hash_video(data, mode="all")}
    for f in hash_video(data, mode="keyframes"):
        assert full[f.timestamp] == f.value


def test_half_second_interval_and_reduced_size() -> None:
    data = make_video(seconds=2, fps=10)
    frames = hash_video(data, interval=0.5, max_side=64)
    assert [f.timestamp for f in frames] == [0.0, 0.5, 1.0, 1.5]


@pytest.mark.parametrize("data", [b"\x00\x00\x00\x18ftypisom" + b"\x00" * 500, b"\x1a\x45\xdf\xa3" + b"junk" * 100])
def test_corrupt_video_is_a_media_error(data: bytes) -> None:
    with pytest.raises(MediaError):
        hash_video(data)
