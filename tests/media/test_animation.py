"""Animated and multi-frame images: every frame hashed (sampled past a cap), stills untouched, decoding bounded."""

from __future__ import annotations

import io
import itertools
import struct
import time
import zlib

import pytest
from PIL import Image

from safeguard.errors import MediaError
from safeguard.media import Media, animation
from safeguard.media.animation import _gif_frames, plan, sample
from safeguard.signals.base import hamming_hex
from safeguard.signals.pdq import PDQSignal, pdq_hex
from tests.media_factory import animation_bytes, encode, make_image

FORMATS = ["GIF", "WEBP", "PNG", "AVIF", "TIFF", "HEIF", "MPO"]


def pdq_frames(data: bytes, **kw: int) -> list[tuple[int | None, str]]:
    return [(s.frame, s.value) for s in PDQSignal().compute(Media.from_bytes(data, **kw))]


def test_sample_takes_every_frame_up_to_the_cap_then_spreads_evenly() -> None:
    assert sample(5, 64) == [0, 1, 2, 3, 4]
    got = sample(1000, 64)
    assert len(got) == 64 and got[0] == 0 and got[-1] == 999
    gaps = {b - a for a, b in itertools.pairwise(got)}
    assert gaps <= {15, 16, 17}
    assert sample(10, 1) == [0]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF", "HEIF"])
def test_still_images_have_no_plan_and_one_unchanged_hash(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    im = make_image(2)
    data = encode(im, fmt)
    media = Media.from_bytes(data)
    expected = pdq_hex(media.image())
    if fmt not in ("AVIF", "HEIF"):  # the bytes alone say "one frame": the file is not even opened again

        def no_open(data: bytes) -> Image.Image:
            raise AssertionError("opened")

        monkeypatch.setattr(animation, "open_image", no_open)
    assert plan(media) is None
    [sig] = PDQSignal().compute(media)
    assert (sig.value, sig.quality, sig.frame) == (expected[0], expected[1], None)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_frame_is_hashed_with_its_index(fmt: str) -> None:
    n = 3 if fmt == "MPO" else 4  # Pillow writes the offsets of a fourth MPO picture wrong
    frames = [make_image(s) for s in range(10, 10 + n)]
    got = pdq_frames(animation_bytes(frames, fmt))
    assert [k for k, _ in got] == list(range(n))
    for (_k, value), im in zip(got, frames, strict=True):
        assert hamming_hex(value, pdq_hex(im)[0]) <= 24, fmt  # each frame is its own image (lossy formats)
    assert len({v for _, v in got}) == n


def test_long_animations_are_sampled_to_the_cap() -> None:
    frames = [make_image(s, (64, 48)) for s in range(40)]
    data = animation_bytes(frames, "GIF")
    got = pdq_frames(data, max_frames=8)
    assert [k for k, _ in got] == sample(40, 8)
    assert got[-1][0] == 39


def test_gif_frame_count_walks_like_pillow() -> None:
    frames = [make_image(s, (64, 48)) for s in range(6)]
    data = animation_bytes(frames, "GIF", comment=b"benign")
    assert _gif_frames(data, 100) == Image.open(io.BytesIO(data)).n_frames == 6
    assert _gif_frames(data, 3) == 3
    # stray bytes between blocks: Pillow skips them and so must the count, or frames after them hide
    first_descriptor = data.index(b"\x2c", 13 + 768)
    junk = data[:first_descriptor] + b"\x00\x07" + data[first_descriptor:]
    assert _gif_frames(junk, 100) == Image.open(io.BytesIO(junk)).n_frames == 6


def test_total_pixels_over_the_budget_is_413_before_any_frame_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [make_image(s, (320, 240)) for s in range(12)]
    data = animation_bytes(frames, "GIF")

    def no_frames(*a: object) -> None:
        raise AssertionError("frames decoded")

    monkeypatch.setattr(animation, "frames", no_frames)
    media = Media.from_bytes(data, max_animation_pixels=320 * 240 * 11)
    with pytest.raises(MediaError) as err:
        PDQSignal().compute(media)
    assert (err.value.code, err.value.status) == ("animation_too_large", 413)
    assert err.value.details["frames"] == 12


def test_tiny_frames_count_as_a_minimum_cost() -> None:
    """Thousands of 1x1 frames cost per frame, not per pixel: they are refused, quickly."""
    one = [Image.new("RGB", (1, 1), (k % 256, 0, 0)) for k in range(7000)]
    data = animation_bytes(one, "GIF", duration=20)
    t = time.perf_counter()
    with pytest.raises(MediaError) as err:
        plan(Media.from_bytes(data))
    assert err.value.code == "animation_too_large"
    assert time.perf_counter() - t < 2.0


def test_lying_apng_frame_count_is_refused_without_decoding() -> None:
    data = animation_bytes([make_image(s, (64, 48)) for s in range(3)], "PNG")
    at = data.index(b"acTL")
    body = b"acTL" + struct.pack(">II", 2**31 - 1, 0)
    lying = data[:at] + body + struct.pack(">I", zlib.crc32(body)) + data[at + 12 + 4 :]
    with pytest.raises(MediaError) as err:
        plan(Media.from_bytes(lying))
    assert err.value.code == "animation_too_large"


def test_a_later_gif_frame_past_the_pixel_limit_is_refused_before_its_pixels() -> None:
    frames = [make_image(s, (64, 48)) for s in range(3)]
    data = bytearray(animation_bytes(frames, "GIF"))
    # the last image descriptor claims a 4000x4000 frame: Pillow would grow the canvas to it
    at = data.rindex(b"\x2c\x00\x00\x00\x00")
    data[at + 5 : at + 9] = struct.pack("<HH", 4000, 4000)
    media = Media.from_bytes(bytes(data), max_pixels=1_000_000)
    with pytest.raises(MediaError) as err:
        PDQSignal().compute(media)
    assert (err.value.code, err.value.status) == ("too_many_pixels", 413)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_truncated_animation_is_4xx(fmt: str) -> None:
    data = animation_bytes([make_image(s) for s in range(4)], fmt)
    with pytest.raises(MediaError) as err:
        PDQSignal().compute(Media.from_bytes(data[: len(data) * 3 // 4]))
    assert 400 <= err.value.status < 500
