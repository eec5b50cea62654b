"""The stream monitor on real streams: live HLS over loopback HTTP, local files, broken and unreachable
sources. The terminate webhook is received by a loopback server that verifies its signature."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.errors import InvalidInput, NotFound
from safeguard.signals.pdq import pdq_hex
from safeguard.store.models import Case, CaseItem
from safeguard.workers.streams import StreamConfig, StreamMonitor
from safeguard.workers.streams_store import StreamRow
from tests.streaming import LiveHLSServer, WebhookReceiver, make_hls
from tests.videogen import benign_image, make_video

SECRET = "test-secret"


@pytest.fixture
def hook() -> WebhookReceiver:
    with WebhookReceiver(SECRET) as r:
        yield r  # type: ignore[misc]


@pytest.fixture
def live_engine(settings: Settings, hook: WebhookReceiver) -> Engine:
    """SQLite, and PostgreSQL too when SAFEGUARD_TEST_POSTGRES_URL is set (conftest's ``settings``)."""
    eng = Engine(settings.with_(webhook_url=hook.url, webhook_secret=SECRET, run_worker=False))
    yield eng  # type: ignore[misc]
    eng.close()


def _bank_image(engine: Engine, seed: int) -> object:
    img = benign_image(seed)
    b = BankService(engine.db)
    b.create("known", actor="test", kind="csam")
    b.add_entry("known", signal_type="pdq", value=pdq_hex(img)[0], actor="test", category="A1")
    return img


@pytest.mark.slow
def test_live_hls_with_banked_image_is_terminated(tmp_path: Path, live_engine: Engine, hook: WebhookReceiver) -> None:
    img = _bank_image(live_engine, 11)
    segs = make_hls(tmp_path / "hls", seconds=8, insert=img, insert_at=(4.0, 6.0))  # type: ignore[arg-type]
    mon = StreamMonitor(live_engine, StreamConfig(give_up_after=10))
    with LiveHLSServer(tmp_path / "hls", segs) as srv:
        st = mon.watch(srv.url, platform_stream_id="live-42", user_id="user-7")
        got = hook.wait_for("stream.terminate", timeout=30)
        assert got is not None, mon.get(st.id)
        delay = got["at"] - srv.published_at(4)  # segment 4 holds the first matching frame (t=4.0s)
        print(f"\nterminate webhook {delay:.3f}s after the segment with the first matching frame was published")
        state = mon.wait(st.id, timeout=10)
    body = got["body"]
    assert got["headers"]["Safeguard-Event"] == "stream.terminate"
    assert body["stream_id"] == "live-42" and body["user_id"] == "user-7"
    assert body["safeguard_stream_id"] == st.id
    assert body["matches"][0]["time_range"] == [4.0, 4.0] and body["matches"][0]["bank"] == "known"
    assert hook.rejected == 0
    assert state.status == "terminated" and state.frames_sampled >= 5
    assert state.findings[0]["time_range"] == [4.0, 4.0]
    with live_engine.db.read() as s:
        row = s.get(StreamRow, st.id)
        assert row is not None and row.status == "terminated" and row.decision_id == body["decision_id"]
        case = s.execute(select(Case).where(Case.subject_kind == "stream", Case.subject_id == "live-42")).scalar_one()
        assert body["case_id"] == case.id
        item = s.execute(select(CaseItem).where(CaseItem.case_id == case.id)).scalar_one()
        assert item.summary["findings"][0]["time_range"] == [4.0, 4.0]


@pytest.mark.slow
def test_benign_live_hls_runs_to_the_end(tmp_path: Path, live_engine: Engine, hook: WebhookReceiver) -> None:
    _bank_image(live_engine, 11)
    segs = make_hls(tmp_path / "hls", seconds=4, seed=2)
    mon = StreamMonitor(live_engine, StreamConfig(give_up_after=10))
    with LiveHLSServer(tmp_path / "hls", segs) as srv:
        st = mon.watch(srv.url, platform_stream_id="live-1")
        state = mon.wait(st.id, timeout=30)
    assert state.status == "ended", state
    assert state.frames_sampled >= 3 and state.findings == []
    assert hook.received == []


@pytest.mark.slow
def test_corrupt_segment_does_not_stop_the_watch(tmp_path: Path, live_engine: Engine, hook: WebhookReceiver) -> None:
    img = _bank_image(live_engine, 12)
    segs = make_hls(tmp_path / "hls", seconds=6, insert=img, insert_at=(4.0, 6.0))  # type: ignore[arg-type]
    mon = StreamMonitor(live_engine, StreamConfig(give_up_after=10))
    with LiveHLSServer(tmp_path / "hls", segs, broken={2}) as srv:
        st = mon.watch(srv.url, platform_stream_id="live-2")
        state = mon.wait(st.id, timeout=30)
    assert state.status == "terminated", state
    assert hook.wait_for("stream.terminate", timeout=5) is not None


def test_local_file_is_watched_at_its_own_pace(tmp_path: Path, live_engine: Engine, hook: WebhookReceiver) -> None:
    img = _bank_image(live_engine, 13)
    path = tmp_path / "clip.mp4"
    make_video(path, seconds=3, fps=10, insert=img, insert_at=(2.0, 3.0))  # type: ignore[arg-type]
    mon = StreamMonitor(live_engine, StreamConfig(allow_files=True, give_up_after=5))
    t0 = time.monotonic()
    st = mon.watch(str(path), platform_stream_id="file-1")
    state = mon.wait(st.id, timeout=20)
    assert state.status == "terminated", state
    assert time.monotonic() - t0 >= 1.5  # paced at 1x, not read as fast as the disk allows
    assert state.findings[0]["time_range"] == [2.0, 2.0]
    assert hook.wait_for("stream.terminate", timeout=5) is not None


def test_unreachable_url_fails_with_a_clear_state(live_engine: Engine) -> None:
    mon = StreamMonitor(live_engine, StreamConfig(give_up_after=1.0, open_timeout=1.0, read_timeout=1.0))
    st = mon.watch("http://127.0.0.1:9/nothing.m3u8", platform_stream_id="gone")
    state = mon.wait(st.id, timeout=15)
    assert state.status == "failed"
    assert "gave up" in state.error and state.frames_sampled == 0
    with live_engine.db.read() as s:
        row = s.get(StreamRow, st.id)
        assert row is not None and row.status == "failed" and "gave up" in row.error


def test_garbage_file_fails_without_crashing(tmp_path: Path, live_engine: Engine) -> None:
    path = tmp_path / "junk.ts"
    path.write_bytes(b"not a video at all " * 500)
    mon = StreamMonitor(live_engine, StreamConfig(allow_files=True, give_up_after=0.5))
    state = mon.wait(mon.watch(str(path), platform_stream_id="junk").id, timeout=15)
    assert state.status == "failed" and state.error


def test_stop_ends_the_watch(tmp_path: Path, live_engine: Engine) -> None:
    path = tmp_path / "long.mp4"
    make_video(path, seconds=20, fps=5)
    mon = StreamMonitor(live_engine, StreamConfig(allow_files=True))
    st = mon.watch(str(path), platform_stream_id="long")
    time.sleep(0.5)
    assert mon.stop(st.id).status == "stopped"
    assert mon.get(st.id).status == "stopped"


def test_urls_are_checked(live_engine: Engine) -> None:
    mon = StreamMonitor(live_engine, StreamConfig())
    with pytest.raises(InvalidInput):
        mon.watch("/etc/passwd", platform_stream_id="x")
    with pytest.raises(InvalidInput):
        mon.watch("file:///etc/passwd", platform_stream_id="x")
    with pytest.raises(InvalidInput):
        mon.watch("http://127.0.0.1/x.m3u8", platform_stream_id="")
    with pytest.raises(NotFound):
        mon.get("str_nope")


def test_config_from_env() -> None:
    cfg = StreamConfig.from_env({"SAFEGUARD_STREAM_SAMPLE_INTERVAL": "0.5", "SAFEGUARD_STREAM_ALLOW_FILES": "1"})
    assert cfg.sample_interval == 0.5 and cfg.allow_files is True and cfg.give_up_after == 60.0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command (Debian package ffmpeg)")
def test_rtmp_stream_is_terminated(tmp_path: Path, live_engine: Engine, hook: WebhookReceiver) -> None:
    """RTMP: the ffmpeg command publishes a clip at 1x as a one-client RTMP server (``-listen 1``)."""
    img = _bank_image(live_engine, 14)
    clip = tmp_path / "clip.mp4"
    make_video(clip, seconds=5, fps=10, insert=img, insert_at=(2.0, 4.0))  # type: ignore[arg-type]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"rtmp://127.0.0.1:{port}/live/test"
    cmd = ["ffmpeg", "-loglevel", "error", "-re", "-i", str(clip), "-c", "copy", "-f", "flv", "-listen", "1", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        mon = StreamMonitor(live_engine, StreamConfig(give_up_after=10))
        st = mon.watch(url, platform_stream_id="rtmp-1")  # refused until ffmpeg listens: the monitor retries
        state = mon.wait(st.id, timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert state.status == "terminated", state
    assert state.findings[0]["time_range"] == [2.0, 2.0]
    assert hook.wait_for("stream.terminate", timeout=5) is not None


def test_low_confidence_match_raises_the_sampling_rate(
    tmp_path: Path, live_engine: Engine, hook: WebhookReceiver
) -> None:
    img = benign_image(15)
    b = BankService(live_engine.db)
    # match threshold 0: any real match is past it, but within the review threshold → low confidence
    b.create("near", actor="test", kind="csam", thresholds={"pdq": 0}, review_thresholds={"pdq": 64})
    b.add_entry("near", signal_type="pdq", value=pdq_hex(img)[0], actor="test")
    path = tmp_path / "clip.mp4"
    make_video(path, seconds=4, fps=10, insert=img, insert_at=(1.0, 1.5))
    mon = StreamMonitor(live_engine, StreamConfig(allow_files=True, give_up_after=5))
    state = mon.wait(mon.watch(str(path), platform_stream_id="sus").id, timeout=20)
    assert state.status == "ended", state  # reviewed, not terminated
    assert state.findings and state.findings[0]["confidence"] == "low"
    assert state.frames_sampled >= 8  # 1/s before the finding, every 0.25 s after it (4 s would give 4)
    assert state.decision_id is not None
    assert live_engine.get_decision(state.decision_id)["verdict"] == "review"
    assert hook.wait_for("stream.terminate", timeout=0.5) is None


def test_stop_from_another_process_is_noticed(tmp_path: Path, live_engine: Engine) -> None:
    path = tmp_path / "long.mp4"
    make_video(path, seconds=20, fps=5)
    mon = StreamMonitor(live_engine, StreamConfig(allow_files=True, persist_seconds=0.2))
    st = mon.watch(str(path), platform_stream_id="elsewhere")
    other = StreamMonitor(live_engine, StreamConfig(allow_files=True))  # holds no watcher for it
    assert other.stop(st.id).status == "stopped"
    state = mon.wait(st.id, timeout=10)
    assert state.status == "stopped"


def test_orphaned_streams_are_adopted(tmp_path: Path, live_engine: Engine) -> None:
    from datetime import timedelta

    from safeguard.store.models import utcnow

    path = tmp_path / "clip.mp4"
    make_video(path, seconds=2, fps=5)
    with live_engine.db.write() as s:  # a row left "watching" by a process that died a while ago
        s.add(
            StreamRow(
                id="str_orphan",
                platform_stream_id="p-orphan",
                url=str(path),
                status="watching",
                frames_sampled=7,
                findings=[],
                error="",
                created_at=utcnow(),
                updated_at=utcnow() - timedelta(minutes=5),
            )
        )
    mon = StreamMonitor(live_engine, StreamConfig(allow_files=True))
    other = StreamMonitor(live_engine, StreamConfig(allow_files=True))
    assert mon.adopt_orphans(stale_after=60) == ["str_orphan"]
    assert other.adopt_orphans(stale_after=60) == []  # claimed once only
    state = mon.wait("str_orphan", timeout=15)
    assert state.status == "ended" and state.frames_sampled >= 8


def test_server_that_never_answers_fails_in_time(live_engine: Engine) -> None:
    with socket.socket() as srv:  # accepts connections, never sends a byte
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        url = f"http://127.0.0.1:{srv.getsockname()[1]}/stalled.m3u8"
        mon = StreamMonitor(live_engine, StreamConfig(give_up_after=1.0, open_timeout=0.5, read_timeout=0.5))
        t0 = time.monotonic()
        state = mon.wait(mon.watch(url, platform_stream_id="stalled").id, timeout=20)
    assert state.status == "failed" and "gave up" in state.error
    assert time.monotonic() - t0 < 15


def test_every_stream_setting_is_documented() -> None:
    from dataclasses import fields

    doc = (Path(__file__).resolve().parents[2] / "docs" / "streams.md").read_text(encoding="utf-8")
    for f in fields(StreamConfig):
        assert f"`SAFEGUARD_STREAM_{f.name.upper()}`" in doc, f.name
    assert "`SAFEGUARD_VIDEO_ASYNC_BYTES`" in doc and "`SAFEGUARD_VIDEO_ASYNC_SECONDS`" in doc
