"""Video uploads against banked videos (vPDQ semantics) and banked images (frames), with time ranges."""

from __future__ import annotations

import io
import json

from safeguard.banks.service import BankService
from safeguard.banks.sources.csv_list import CSVHashList
from safeguard.banks.sources.jsonl_list import JSONLHashList
from safeguard.content import Content, ContentKind, Signal, Verdict
from safeguard.engine import Engine
from safeguard.signals.pdq import pdq_hex
from safeguard.signals.vpdq import to_compact
from tests.videogen import benign_image, make_video


def _frames(engine: Engine, data: bytes) -> list[Signal]:
    return [s for s in engine.scan(Content(ContentKind.VIDEO, data=data)).signals if s.type == "vpdq"]


def test_banked_image_in_video_frames_reports_time_range(engine: Engine, banks: BankService) -> None:
    img = benign_image(7)
    banks.create("known", actor="t", kind="csam")
    banks.add_entry("known", signal_type="pdq", value=pdq_hex(img)[0], actor="t", category="A1")
    data = make_video(seconds=6, fps=10, insert=img, insert_at=(2.0, 4.0))
    d = engine.scan(Content(ContentKind.VIDEO, data=data, content_id="v1", user_id="u1"))
    assert d.verdict == Verdict.BLOCK
    hits = [f for f in d.findings if f.detector == "video_match"]
    assert len(hits) == 1
    assert hits[0].time_range == (2.0, 3.0)
    assert hits[0].bank == "known" and hits[0].signal_type == "pdq" and hits[0].confidence == "high"
    assert "known-csam" in d.reasons


def test_benign_video_is_allowed(engine: Engine, banks: BankService) -> None:
    banks.create("known", actor="t", kind="csam")
    banks.add_entry("known", signal_type="pdq", value=pdq_hex(benign_image(7))[0], actor="t")
    d = engine.scan(Content(ContentKind.VIDEO, data=make_video(seconds=4, fps=10, seed=3)))
    assert d.verdict == Verdict.ALLOW and d.findings == ()


def test_banked_video_matches_reencoded_copy(engine: Engine, banks: BankService) -> None:
    original = make_video(seconds=5, fps=10, size=(192, 144), seed=1, insert=benign_image(9), insert_at=(1, 2))
    banks.create("videos", actor="t", kind="csam")
    frames = _frames(engine, original)
    row = {"signal_type": "vpdq", "value": to_compact(frames), "category": "A1", "provenance": {"video": "clip-1"}}
    res = banks.import_rows("videos", JSONLHashList().parse(io.StringIO(json.dumps(row) + "\n")), actor="t")
    assert not res.errors and res.added_or_updated == len({f.value for f in frames})
    # a different encoding (VP9 in WebM, larger) of the same pictures
    copy = make_video(
        seconds=5,
        fps=10,
        size=(256, 192),
        seed=1,
        codec="libvpx-vp9",
        fmt="webm",
        insert=benign_image(9),
        insert_at=(1, 2),
    )
    d = engine.scan(Content(ContentKind.VIDEO, data=copy))
    vids = [f for f in d.findings if f.kind == "video_match"]
    assert len(vids) == 1
    f = vids[0]
    assert f.confidence == "high" and f.score is not None and f.score >= 80
    assert f.time_range == (0.0, 4.0)
    assert "clip-1" in f.explanation
    assert d.verdict == Verdict.BLOCK


def test_partial_video_match_is_low_confidence(engine: Engine, banks: BankService) -> None:
    clip = make_video(seconds=2, fps=10, seed=1)
    banks.create("videos", actor="t", kind="csam")
    frames = _frames(engine, clip)
    banks.import_rows(
        "videos",
        JSONLHashList().parse(io.StringIO(json.dumps({"signal_type": "vpdq", "value": to_compact(frames)}) + "\n")),
        actor="t",
    )
    # the banked two seconds, followed by eight unrelated seconds: 20 % of the query's frames match
    query = frames + _frames(engine, make_video(seconds=8, fps=10, seed=5))
    query = [Signal("vpdq", s.value, s.quality, timestamp=float(k)) for k, s in enumerate(query)]
    d = engine.scan(Content(ContentKind.HASHES, signals=tuple(query)))
    vids = [f for f in d.findings if f.kind == "video_match"]
    assert len(vids) == 1 and vids[0].confidence == "low"
    assert d.verdict == Verdict.REVIEW
    # the bank may lower vPDQ's query percentage
    banks.update("videos", actor="t", thresholds={"vpdq_query_percent": 10})
    assert engine.scan(Content(ContentKind.HASHES, signals=tuple(query))).verdict == Verdict.BLOCK


def test_vpdq_bank_export_round_trips_through_csv(engine: Engine, banks: BankService) -> None:
    banks.create("videos", actor="t", kind="csam")
    frames = _frames(engine, make_video(seconds=3, fps=10, seed=2))
    banks.import_rows(
        "videos",
        CSVHashList().parse(
            io.StringIO("signal_type,value,category\n" + 'vpdq,"' + to_compact(frames).replace('"', '""') + '",B1\n')
        ),
        actor="t",
    )
    out = io.StringIO()
    CSVHashList().write(banks.export("videos"), out)
    banks.create("copy", actor="t", kind="csam")
    res = banks.import_rows("copy", CSVHashList().parse(io.StringIO(out.getvalue())), actor="t")
    assert not res.errors
    a = sorted((r["value"], r["provenance"]["video"], r["provenance"]["video_frames"]) for r in banks.export("videos"))
    b = sorted((r["value"], r["provenance"]["video"], r["provenance"]["video_frames"]) for r in banks.export("copy"))
    assert a == b and len(a) == 3
