"""``/v1/streams`` and asynchronous video scans through the HTTP API (in-process client)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from safeguard.api import create_app
from safeguard.api import streams as streams_api
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.signals.pdq import pdq_hex
from safeguard.workers.streams import StreamConfig, StreamMonitor
from safeguard.workers.video_jobs import VideoScanJobs
from tests.helpers.api import auth
from tests.streaming import WebhookReceiver
from tests.videogen import benign_image, make_video

SECRET = "api-secret"


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as r:
        yield r


@pytest.fixture
def client(settings: Settings, hook: WebhookReceiver) -> Iterator[tuple[TestClient, Engine]]:
    s = settings.with_(webhook_url=hook.url, webhook_secret=SECRET, run_worker=True, outbox_poll_seconds=0.1)
    eng = Engine(s)
    app = create_app(s, engine=eng)
    if streams_api.router not in [getattr(r, "router", None) for r in app.routes]:
        app.include_router(streams_api.router)
    app.state.services.provide("stream_monitor", StreamMonitor(eng, StreamConfig(allow_files=True, give_up_after=2)))
    with TestClient(app) as c:
        yield c, eng
    app.state.services.stream_monitor().shutdown()
    eng.close()


def _keys(eng: Engine) -> dict[str, str]:
    from safeguard.keys import KeyService

    ks = KeyService(eng.db)
    return {r: ks.create(r, f"t-{r}", actor="test")["key"] for r in ("platform", "moderator")}


def test_register_watch_and_terminate(tmp_path: Path, client: tuple[TestClient, Engine], hook: WebhookReceiver) -> None:
    c, eng = client
    keys = _keys(eng)
    img = benign_image(21)
    b = BankService(eng.db)
    b.create("known", actor="t", kind="csam")
    b.add_entry("known", signal_type="pdq", value=pdq_hex(img)[0], actor="t")
    path = tmp_path / "live.mp4"
    make_video(path, seconds=3, fps=10, insert=img, insert_at=(1.0, 3.0))
    r = c.post(
        "/v1/streams", json={"url": str(path), "stream_id": "p-1", "user_id": "u-1"}, headers=auth(keys["platform"])
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert (
        c.post("/v1/streams", json={"url": str(path), "stream_id": "p-1"}, headers=auth(keys["moderator"])).status_code
        == 403
    )
    got = hook.wait_for("stream.terminate", timeout=20)
    assert got is not None and got["body"]["stream_id"] == "p-1"
    for _ in range(100):
        state = c.get(f"/v1/streams/{sid}", headers=auth(keys["moderator"])).json()
        if state["status"] == "terminated":
            break
        time.sleep(0.05)
    assert state["status"] == "terminated" and state["frames_sampled"] >= 2
    assert state["findings"][0]["time_range"] == [1.0, 1.0]
    listed = c.get("/v1/streams", headers=auth(keys["platform"])).json()["streams"]
    assert [s["id"] for s in listed] == [sid]
    for _ in range(100):  # the watcher counts itself finished after its last write, just after the state
        metrics = c.get("/metrics").text
        if 'safeguard_streams_finished_total{status="terminated"}' in metrics:
            break
        time.sleep(0.05)
    assert (
        "safeguard_stream_frames_total" in metrics
        and 'safeguard_streams_finished_total{status="terminated"}' in metrics
    )


def test_delete_stops_and_errors_are_json(tmp_path: Path, client: tuple[TestClient, Engine]) -> None:
    c, eng = client
    keys = _keys(eng)
    path = tmp_path / "long.mp4"
    make_video(path, seconds=20, fps=5)
    sid = c.post("/v1/streams", json={"url": str(path), "stream_id": "p-2"}, headers=auth(keys["platform"])).json()[
        "id"
    ]
    r = c.delete(f"/v1/streams/{sid}", headers=auth(keys["platform"]))
    assert r.status_code == 200 and r.json()["status"] == "stopped"
    r = c.get("/v1/streams/str_unknown", headers=auth(keys["platform"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "stream_not_found"
    r = c.post("/v1/streams", json={"url": "gopher://x", "stream_id": "p-3"}, headers=auth(keys["platform"]))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_stream_url"


def test_large_video_is_scanned_asynchronously(client: tuple[TestClient, Engine], hook: WebhookReceiver) -> None:
    c, eng = client
    keys = _keys(eng)
    img = benign_image(22)
    b = BankService(eng.db)
    b.create("known", actor="t", kind="csam")
    b.add_entry("known", signal_type="pdq", value=pdq_hex(img)[0], actor="t")
    data = make_video(seconds=4, fps=10, insert=img, insert_at=(2.0, 3.0))
    r = c.post(
        "/v1/scan?async=true",
        files={"file": ("clip.mp4", data, "video/mp4")},
        data={"content_id": "vid-1"},
        headers=auth(keys["platform"]),
    )
    assert r.status_code == 202, r.text
    did = r.json()["id"]
    jobs: VideoScanJobs = c.app.state.services.video_jobs()  # type: ignore[attr-defined]
    jobs.wait(did, timeout=30)
    d = c.get(f"/v1/decisions/{did}", headers=auth(keys["platform"])).json()
    assert d["status"] == "done" and d["verdict"] == "block"
    assert any(f["time_range"] == [2.0, 2.0] for f in d["findings"])
    done = hook.wait_for("scan.completed", timeout=10)
    assert done is not None and done["body"]["decision"]["id"] == did


def test_broken_video_async_fails_cleanly(client: tuple[TestClient, Engine], hook: WebhookReceiver) -> None:
    c, eng = client
    keys = _keys(eng)
    data = make_video(seconds=2, fps=10)
    broken = data[:40] + b"\x00" * 3000  # an MP4 header, then nothing decodable
    r = c.post("/v1/scan?async=1", files={"file": ("x.mp4", broken, "video/mp4")}, headers=auth(keys["platform"]))
    assert r.status_code == 202
    did = r.json()["id"]
    c.app.state.services.video_jobs().wait(did, timeout=30)  # type: ignore[attr-defined]
    d = c.get(f"/v1/decisions/{did}", headers=auth(keys["platform"])).json()
    assert d["status"] == "failed" and d["error"]["code"] == "corrupt_media"
    assert hook.wait_for("scan.failed", timeout=10) is not None


def test_bank_a_video_by_upload_then_scan_a_copy(client: tuple[TestClient, Engine]) -> None:
    c, eng = client
    keys = _keys(eng)
    from safeguard.keys import KeyService

    admin = KeyService(eng.db).create("admin", "t-admin", actor="test")["key"]
    assert c.post("/v1/banks", json={"name": "vids", "kind": "csam"}, headers=auth(admin)).status_code in (200, 201)
    original = make_video(seconds=4, fps=10, seed=4, insert=benign_image(23), insert_at=(1, 2))
    r = c.post(
        "/v1/banks/vids/entries", files={"file": ("v.mp4", original, "video/mp4")}, headers=auth(keys["moderator"])
    )
    assert r.status_code in (200, 201), r.text
    entries = c.get("/v1/banks/vids/entries", headers=auth(keys["moderator"])).json()
    entries = entries["entries"] if isinstance(entries, dict) else entries
    vp = [e for e in entries if e["signal_type"] == "vpdq"]
    assert vp and {e["provenance"]["video"] for e in vp} == {
        next(e["value"] for e in entries if e["signal_type"] == "sha256")
    }
    copy = make_video(seconds=4, fps=10, seed=4, size=(256, 192), insert=benign_image(23), insert_at=(1, 2))
    r = c.post("/v1/scan", files={"file": ("copy.mp4", copy, "video/mp4")}, headers=auth(keys["platform"]))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["verdict"] == "block"
    assert any(f["kind"] == "video_match" and f["confidence"] == "high" for f in d["findings"])


def test_long_video_is_deferred_short_one_is_not() -> None:
    from safeguard.workers.video_jobs import should_defer, video_duration

    data = make_video(seconds=3, fps=5)
    assert video_duration(data) == pytest.approx(3.0, abs=0.3)
    base = Settings.from_env({})
    assert not should_defer(data, base)
    assert should_defer(data, base, requested=True)
    assert should_defer(data, Settings.from_env({"SAFEGUARD_VIDEO_ASYNC_SECONDS": "2"}))
    assert should_defer(
        data, Settings.from_env({"SAFEGUARD_VIDEO_ASYNC_SECONDS": "60", "SAFEGUARD_VIDEO_ASYNC_BYTES": "100"})
    )
    assert video_duration(b"not a video") is None


def test_stream_limits_per_key_and_in_total(tmp_path: Path, settings: Settings) -> None:
    s = settings.with_(streams_max_per_key=2, streams_max_total=3)
    eng = Engine(s)
    app = create_app(s, engine=eng)
    if streams_api.router not in [getattr(r, "router", None) for r in app.routes]:
        app.include_router(streams_api.router)
    app.state.services.provide("stream_monitor", StreamMonitor(eng, StreamConfig(allow_files=True)))
    from safeguard.keys import KeyService

    ks = KeyService(eng.db)
    k1, k2 = (ks.create("platform", n, actor="test")["key"] for n in ("one", "two"))
    path = tmp_path / "long.mp4"
    make_video(path, seconds=20, fps=5)
    try:
        with TestClient(app) as c:

            def post(key: str, n: str) -> tuple[int, dict[str, Any]]:
                r = c.post("/v1/streams", json={"url": str(path), "stream_id": n}, headers=auth(key))
                return r.status_code, r.json()

            assert post(k1, "a")[0] == 201 and post(k1, "b")[0] == 201
            status, body = post(k1, "c")  # a third for key one
            assert status == 429 and body["error"]["code"] == "too_many_streams"
            assert body["error"]["details"] == {"limit": "per_key", "max": 2}
            first = c.get("/v1/streams", headers=auth(k1)).json()["streams"][0]["id"]
            assert post(k2, "d")[0] == 201  # key two: its first; three in all
            status, body = post(k2, "e")
            assert status == 429 and body["error"]["details"] == {"limit": "total", "max": 3}
            assert c.delete(f"/v1/streams/{first}", headers=auth(k1)).status_code == 200
            assert post(k2, "e")[0] == 201  # a place freed by stopping one
    finally:
        app.state.services.stream_monitor().shutdown()
        eng.close()


def test_refused_stream_url_is_a_json_error(client: tuple[TestClient, Engine]) -> None:
    c, eng = client
    keys = _keys(eng)
    for url in ("http://169.254.169.254/latest/meta-data/", "http://2130706434/x.m3u8", "http://[::ffff:10.0.0.1]/"):
        r = c.post("/v1/streams", json={"url": url, "stream_id": "p"}, headers=auth(keys["platform"]))
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "egress_refused" and "SAFEGUARD_EGRESS_ALLOW" in err["message"]
