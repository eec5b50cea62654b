"""A stream whose metadata is not UTF-8 is still watched (PyAV's strict decoding failed the watch, so a
tag was enough to go unmonitored), and one whose codec cannot be opened fails with a clear state."""

from __future__ import annotations

from pathlib import Path

from safeguard.banks import BankService
from safeguard.engine import Engine
from safeguard.signals.pdq import pdq_hex
from safeguard.workers.streams import StreamConfig, StreamMonitor
from tests.videogen import benign_image, make_video


def test_stream_with_non_utf8_metadata_is_watched(tmp_path: Path, engine: Engine) -> None:
    img = benign_image(14)
    banks = BankService(engine.db)
    banks.create("known", actor="test")
    banks.add_entry("known", signal_type="pdq", value=pdq_hex(img)[0], actor="test", category="A1")
    data = make_video(seconds=2, fps=10, insert=img, insert_at=(1.0, 2.0))
    assert b"Lavf" in data
    path = tmp_path / "tagged.mp4"
    path.write_bytes(
        data.replace(b"Lavf", b"\xff\xfe\x80\x81", 1).replace(b"VideoHandler", b"Vid\xc3\x28oHand\xff\xfe", 1)
    )
    mon = StreamMonitor(engine, StreamConfig(allow_files=True, give_up_after=2))
    try:
        state = mon.wait(mon.watch(str(path), platform_stream_id="tagged").id, timeout=20)
        assert state.status == "terminated", state
    finally:
        mon.shutdown()


def test_stream_without_a_codec_fails_with_a_clear_state(tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / "nocodec.mp4"
    path.write_bytes(make_video(seconds=1, fps=5).replace(b"avc1", b"zzzz"))
    mon = StreamMonitor(engine, StreamConfig(allow_files=True, give_up_after=0.5))
    try:
        state = mon.wait(mon.watch(str(path), platform_stream_id="nocodec").id, timeout=15)
        assert state.status == "failed" and "no decodable video" in state.error, state
    finally:
        mon.shutdown()
