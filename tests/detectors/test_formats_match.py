"""No blind spots by format, end to end: re-encoded AVIF/HEIC and banked frames inside animations are
blocked; media that cannot be hashed perceptually gets the operator's ``unhashable`` verdict, never a
silent allow."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from safeguard.api import create_app
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Verdict
from safeguard.engine import Engine
from safeguard.errors import ConfigError, SafeguardError
from safeguard.media import Media
from safeguard.policy import parse_policy
from safeguard.signals.pdq import PDQSignal
from tests.helpers.api import auth
from tests.media_factory import animation_bytes, encode, heif_bytes, make_image


def bank_jpeg(banks: BankService, seed: int) -> int:
    banks.create("csam", actor="t", default_category="A1")
    [sig] = PDQSignal().compute(Media.from_bytes(encode(make_image(seed), "JPEG", quality=90)))
    return int(banks.add_entry("csam", signal_type="pdq", value=sig.value, actor="t").id)


def scan(engine: Engine, data: bytes) -> tuple[Verdict, list[dict[str, object]], list[str]]:
    media = engine.media_for(data)
    kind = ContentKind.VIDEO if media.is_video else ContentKind.IMAGE
    d = engine.scan(Content(kind=kind, data=data, content_id="c"), media=media)
    return d.verdict, [f.to_dict() for f in d.findings], list(d.reasons)


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_image_banked_as_jpeg_is_blocked_when_uploaded_as_avif_or_heic(
    engine: Engine, banks: BankService, fmt: str
) -> None:
    entry = bank_jpeg(banks, 21)
    verdict, findings, reasons = scan(engine, heif_bytes(21, fmt))
    assert verdict is Verdict.BLOCK and "known-csam" in reasons
    assert findings[0]["entry_id"] == entry and findings[0]["confidence"] == "high"
    # a different image in the same format is allowed: the match is the picture, not the format
    assert scan(engine, heif_bytes(22, fmt))[0] is Verdict.ALLOW


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_banked_frames_after_a_benign_first_frame_are_blocked_with_their_indexes(
    engine: Engine, banks: BankService, fmt: str
) -> None:
    entry = bank_jpeg(banks, 31)
    banked = make_image(31)
    # frames 2 and 4 are the banked picture (4 slightly brightened, so no encoder merges it with a neighbour)
    brighter = banked.point(lambda v: min(v + 6, 255))
    frames = [make_image(40), make_image(41), banked, make_image(42), brighter, make_image(43)]
    verdict, findings, reasons = scan(engine, animation_bytes(frames, fmt))
    assert verdict is Verdict.BLOCK and "known-csam" in reasons
    [f] = findings
    assert f["entry_id"] == entry and f["frames"] == [2, 4]
    assert "frames 2, 4" in str(f["explanation"])
    # the first frame alone, as the still path saw it before, is not banked
    assert scan(engine, encode(make_image(40), fmt))[0] is Verdict.ALLOW


def test_banked_frames_are_found_in_a_sampled_long_animation(settings: Settings, banks: BankService) -> None:
    e = Engine(settings.with_(animation_max_frames=5))
    try:
        bank_jpeg(banks, 33)
        frames = [make_image(s, (96, 72)) for s in range(50, 59)]  # 9 frames; 5 sampled: 0, 2, 4, 6, 8
        frames[6] = make_image(33).resize((96, 72))
        verdict, findings, _ = scan(e, animation_bytes(frames, "GIF"))
        assert verdict is Verdict.BLOCK and findings[0]["frames"] == [6]
    finally:
        e.close()


def test_animation_over_the_budget_is_413_json_over_http(settings: Settings) -> None:
    s = settings.with_(animation_max_pixels=96 * 72 * 4)
    e = Engine(s)
    try:
        from safeguard.keys import KeyService

        key = KeyService(e.db).create("platform", "t", actor="t")["key"]
        with TestClient(create_app(s, engine=e)) as client:
            data = animation_bytes([make_image(k, (96, 72)) for k in range(8)], "GIF")
            r = client.post("/v1/scan", headers=auth(key), files={"file": ("a.gif", data, "image/gif")})
            assert r.status_code == 413, r.text
            assert r.json()["error"]["code"] == "animation_too_large"
            r = client.post("/v1/scan", headers=auth(key), files={"file": ("a.avif", heif_bytes(3), "image/avif")})
            assert r.status_code == 200 and r.json()["verdict"] == "allow"
            assert {x["type"] for x in r.json()["signals"]} == {"sha256", "md5", "pdq"}
    finally:
        e.close()


# -- unhashable -------------------------------------------------------------------------------------
def unhashable_media(data: bytes = b"\x00benign bytes of a type nothing hashes perceptually") -> Media:
    """A recognised type without a perceptual signal type (as a plug-in's sniffed type would be)."""
    return Media(data=data, media_type="application/x-example")


def scan_media(engine: Engine, media: Media) -> tuple[Verdict, list[str], list[str]]:
    d = engine.scan(Content(kind=ContentKind.IMAGE, data=media.data), media=media)
    return d.verdict, [f.kind for f in d.findings], list(d.reasons)


@pytest.mark.parametrize(("choice", "verdict"), [("review", "review"), ("allow", "allow"), ("block", "block")])
def test_unhashable_media_gets_the_operators_verdict_and_says_why(
    settings: Settings, choice: str, verdict: str
) -> None:
    e = Engine(settings.with_(unhashable=choice))
    try:
        d = e.scan(Content(kind=ContentKind.IMAGE, data=b"x"), media=unhashable_media(b"x"))
        assert d.verdict.value == verdict and d.reasons == ("unhashable",)
        [f] = d.findings
        assert (f.detector, f.kind) == ("unhashable", "unhashable")
        assert "no perceptual hash" in f.explanation and "application/x-example" in f.explanation
        assert [a.name for a in d.actions] == {
            "allow": [],
            "review": ["case", "webhook"],
            "block": ["block", "case", "webhook"],
        }[choice]
        assert e.get_decision(d.id)["reasons"] == ["unhashable"]
    finally:
        e.close()


def test_the_default_is_review(engine: Engine) -> None:
    assert Settings().unhashable == "review"
    assert scan_media(engine, unhashable_media()) == (Verdict.REVIEW, ["unhashable"], ["unhashable"])


def test_hashable_media_has_no_unhashable_finding(engine: Engine) -> None:
    for data in (encode(make_image(1), "JPEG"), heif_bytes(1, "AVIF"), animation_bytes([make_image(1), make_image(2)])):
        assert scan(engine, data) == (Verdict.ALLOW, [], [])


def test_a_policy_rule_named_unhashable_replaces_the_setting(settings: Settings) -> None:
    policy = parse_policy(
        "version: t\nrules:\n  - name: unhashable\n    when: {kind: unhashable}\n    verdict: block\n"
        "    actions: [block]\n"
    )
    e = Engine(settings.with_(unhashable="allow"), policy=policy)
    try:
        assert scan_media(e, unhashable_media())[0] is Verdict.BLOCK
        assert [r.name for r in e.policy.rules] == ["unhashable"]
    finally:
        e.close()


def test_a_bad_setting_stops_the_engine_with_a_clear_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="SAFEGUARD_UNHASHABLE must be one of review, allow, block"):
        Engine(settings.with_(unhashable="ignore"))


def test_a_video_whose_frames_all_fail_to_decode_is_never_a_silent_allow(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 40, np.uint8), format="rgb24")
            for p in stream.encode(frame):
                c.mux(p)
        for p in stream.encode(None):
            c.mux(p)
    data = bytearray(path.read_bytes())
    at = data.index(b"mdat")
    size = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 : at - 4 + size] = bytes(size - 8)  # every frame's bytes zeroed, the container intact
    try:
        verdict, findings, reasons = scan(engine, bytes(data))
    except SafeguardError as exc:  # refused as corrupt: also not an allow
        assert 400 <= exc.status < 500
    else:
        assert (verdict, reasons) == (Verdict.REVIEW, ["unhashable"])
        assert [f["kind"] for f in findings] == ["unhashable"]
