"""Corrupt videos get 422 ``corrupt_media``, not a 500 with a plain-text body (issue 15, finding 7: 11
of 14 failures in 600 mutated MP4s were metadata that is not UTF-8, the others a missing codec)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from safeguard.errors import MediaError
from safeguard.media import Media
from safeguard.signals import compute_signals
from tests.helpers.api import auth
from tests.videogen import make_video


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return make_video(seconds=2, fps=5, size=(64, 48))


def corruptions(mp4: bytes) -> dict[str, bytes]:
    assert b"Lavf" in mp4 and b"VideoHandler" in mp4 and b"avc1" in mp4
    return {
        # the container's "encoder" tag, then the track's handler name, made invalid UTF-8
        "container_metadata_not_utf8": mp4.replace(b"Lavf", b"\xff\xfe\x80\x81", 1),
        "stream_metadata_not_utf8": mp4.replace(b"VideoHandler", b"Vid\xc3\x28oHand\xff\xfe", 1),
        # the sample entry names a codec FFmpeg does not know: the track has no codec context
        "codec_missing": mp4.replace(b"avc1", b"zzzz"),
        "codec_zeroed": mp4.replace(b"avc1", b"\x00\x00\x00\x00"),
    }


@pytest.mark.parametrize(
    "name", ["container_metadata_not_utf8", "stream_metadata_not_utf8", "codec_missing", "codec_zeroed"]
)
def test_corrupt_mp4_is_a_media_error_or_hashes(mp4: bytes, name: str) -> None:
    data = corruptions(mp4)[name]
    media = Media.from_bytes(data, max_pixels=10_000_000)
    if name.startswith("codec"):
        with pytest.raises(MediaError) as err:
            compute_signals(media)
        assert err.value.code == "corrupt_media" and err.value.status == 422
    else:
        # metadata Safeguard never reads does not stop the frames from being hashed
        frames = [s for s in compute_signals(media) if s.type == "vpdq"]
        assert len(frames) == 2


@pytest.mark.parametrize(
    "name", ["container_metadata_not_utf8", "stream_metadata_not_utf8", "codec_missing", "codec_zeroed"]
)
def test_corrupt_mp4_through_the_api(app_client: TestClient, keys: dict[str, str], mp4: bytes, name: str) -> None:
    data = corruptions(mp4)[name]
    r = app_client.post("/v1/scan", headers=auth(keys["platform"]), files={"file": ("v.mp4", data, "video/mp4")})
    assert r.headers["content-type"].startswith("application/json"), r.text
    if name.startswith("codec"):
        assert r.status_code == 422 and r.json()["error"]["code"] == "corrupt_media", r.text
    else:
        assert r.status_code == 200 and r.json()["verdict"] == "allow", r.text
