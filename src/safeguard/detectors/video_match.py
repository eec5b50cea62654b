"""Video and stream frames (``vpdq`` signals) against banked videos *and* banked images.

Two questions per video, answered from the same frame hashes:

1. **Is this a banked video?** Frames are matched against ``vpdq`` entries and grouped by the banked
   video they came from (``provenance.video``). vPDQ's own rule decides: frames under quality 50 are
   ignored; the query-match percentage (query frames within the distance threshold of some frame of
   the banked video) and the target-match percentage (the banked video's frames matched by some query
   frame) must reach the bank's ``vpdq_query_percent`` (80) and ``vpdq_target_percent`` (0). Partial
   matches below those percentages are reported with ``low`` confidence, so the default policy sends
   them to review instead of letting them pass silently.
2. **Does a banked image appear in it?** Frames are matched against ``pdq`` entries like uploaded
   images are (same thresholds, same quality floor); consecutive matching frames are merged into time
   ranges, one finding per entry and range.

Findings carry ``time_range`` (seconds into the video or stream). Single-hash matching stays in
``hash_match.py``, which leaves ``vpdq`` signals to this detector.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from sqlalchemy import select

from safeguard.content import Finding, Signal
from safeguard.detectors.base import Detector, ScanContext
from safeguard.signals.pdq import PDQ_QUALITY_FLOOR
from safeguard.signals.vpdq import (
    SECONDS_PER_HASH,
    VPDQ_DISTANCE_THRESHOLD,
    VPDQ_INDEX_MATCH_THRESHOLD_PERCENT,
    VPDQ_QUALITY_THRESHOLD,
    VPDQ_QUERY_MATCH_THRESHOLD_PERCENT,
)
from safeguard.store.models import Bank, BankEntry

MAX_RANGES_PER_ENTRY = 10


@dataclass
class _VideoHits:
    bank: Bank
    entries: dict[int, BankEntry] = field(default_factory=dict)
    query_frames: dict[int, int] = field(default_factory=dict)  # query frame index -> best distance
    target_entries: set[int] = field(default_factory=set)
    frames: int | None = None


def merge_ranges(times: list[float], gap: float) -> list[tuple[float, float]]:
    """Sorted timestamps → ranges, joining neighbours no more than ``gap`` apart."""
    out: list[tuple[float, float]] = []
    for t in sorted(times):
        if out and t - out[-1][1] <= gap:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


class VideoMatchDetector(Detector):
    name = "video_match"

    def applies(self, ctx: ScanContext) -> bool:
        return any(s.type == "vpdq" for s in ctx.signals)

    def detect(self, ctx: ScanContext) -> list[Finding]:
        res = self.resources
        res.indexes.maybe_refresh()
        banks = {b.id: b for b in res.bank_cache().values() if b.enabled}
        frames = [s for s in ctx.signals if s.type == "vpdq"]
        interval = _interval(frames)
        cands: dict[str, dict[int, list[tuple[int, int]]]] = {"pdq": {}, "vpdq": {}}
        for st, default in (("pdq", 31), ("vpdq", VPDQ_DISTANCE_THRESHOLD)):
            index = res.indexes.get(st)
            if index is None or len(index) == 0:
                continue
            radius = max(
                (b.review_thresholds.get(st, b.thresholds.get(st, default)) for b in banks.values()), default=default
            )
            for k, hits in enumerate(index.query_many([f.value for f in frames], radius)):
                for entry_id, dist in hits:
                    cands[st].setdefault(entry_id, []).append((k, dist))
        ids = list(cands["pdq"]) + list(cands["vpdq"])
        if not ids:
            return []
        with res.db.read() as s:
            rows = s.execute(
                select(BankEntry, Bank)
                .join(Bank, Bank.id == BankEntry.bank_id)
                .where(BankEntry.id.in_(ids), BankEntry.enabled.is_(True), Bank.enabled.is_(True))
            ).all()
        findings: list[Finding] = []
        videos: dict[tuple[int, str], _VideoHits] = {}
        for entry, bank in rows:
            if entry.signal_type == "pdq":
                findings.extend(self._image_findings(entry, bank, frames, cands["pdq"].get(entry.id, []), interval))
            elif entry.signal_type == "vpdq":
                match_th = bank.thresholds.get("vpdq", VPDQ_DISTANCE_THRESHOLD)
                key = str((entry.provenance or {}).get("video") or f"entry-{entry.id}")
                vh = videos.setdefault((bank.id, key), _VideoHits(bank))
                n = (entry.provenance or {}).get("video_frames")
                if isinstance(n, int) and n > 0:
                    vh.frames = max(vh.frames or 0, n)
                for k, dist in cands["vpdq"].get(entry.id, []):
                    if dist > match_th or (frames[k].quality or 0) < VPDQ_QUALITY_THRESHOLD:
                        continue
                    vh.entries[entry.id] = entry
                    vh.target_entries.add(entry.id)
                    vh.query_frames[k] = min(dist, vh.query_frames.get(k, dist))
        good = sum(1 for f in frames if (f.quality or 0) >= VPDQ_QUALITY_THRESHOLD)
        for (_bid, key), vh in videos.items():
            if vh.query_frames:
                findings.append(self._video_finding(key, vh, frames, good, interval))
        findings.sort(key=lambda f: (f.confidence != "high", f.time_range or (0.0, 0.0), f.entry_id or 0))
        return findings

    def _image_findings(
        self, entry: BankEntry, bank: Bank, frames: list[Signal], hits: list[tuple[int, int]], interval: float
    ) -> list[Finding]:
        match_th = bank.thresholds.get("pdq", 31)
        review_th = bank.review_thresholds.get("pdq", match_th)
        best = {k: d for k, d in hits if d <= review_th}
        if not best:
            return []
        ranges = merge_ranges([frames[k].timestamp or 0.0 for k in best], gap=interval * 1.5)
        out = []
        for lo, hi in ranges[:MAX_RANGES_PER_ENTRY]:
            inside = [k for k in best if lo <= (frames[k].timestamp or 0.0) <= hi]
            dist = min(best[k] for k in inside)
            quality = max((frames[k].quality or 0) for k in inside)
            reasons = []
            if dist > match_th:
                reasons.append(f"distance {dist} > match threshold {match_th}")
            if entry.opinion == "disputed":
                reasons.append("entry is disputed")
            if entry.surge_quarantined:
                reasons.append("entry is quarantined after a surge of matches")
            if quality < PDQ_QUALITY_FLOOR:
                reasons.append(f"frame quality {quality} < {PDQ_QUALITY_FLOOR}")
            out.append(
                Finding(
                    detector=self.name,
                    kind="hash_match",
                    signal_type="pdq",
                    signal_value=frames[min(inside, key=lambda k: best[k])].value,
                    bank=bank.name,
                    bank_kind=bank.kind,
                    entry_id=entry.id,
                    distance=dist,
                    category=entry.category,
                    confidence="low" if reasons else "high",
                    explanation=(
                        f"banked image (pdq entry {entry.id}, bank {bank.name!r}) in {len(inside)} frame(s) "
                        f"from {lo:.3f}s to {hi:.3f}s at distance {dist}"
                        + (f"; low confidence: {', '.join(reasons)}" if reasons else "")
                    ),
                    time_range=(lo, hi),
                )
            )
        return out

    def _video_finding(self, key: str, hits: _VideoHits, frames: list[Signal], good: int, interval: float) -> Finding:
        bank = hits.bank
        q_need = bank.thresholds.get("vpdq_query_percent", VPDQ_QUERY_MATCH_THRESHOLD_PERCENT)
        t_need = bank.thresholds.get("vpdq_target_percent", VPDQ_INDEX_MATCH_THRESHOLD_PERCENT)
        q_pct = 100.0 * len(hits.query_frames) / max(good, 1)
        t_pct = 100.0 * len(hits.target_entries) / hits.frames if hits.frames else None
        reasons = []
        if q_pct < q_need:
            reasons.append(f"query frames matched {q_pct:.1f}% < {q_need}%")
        if t_pct is not None and t_pct < t_need:
            reasons.append(f"banked video frames matched {t_pct:.1f}% < {t_need}%")
        disputed = [e for e in hits.entries.values() if e.opinion == "disputed"]
        if disputed and len(disputed) == len(hits.entries):
            reasons.append("entries are disputed")
        if any(e.surge_quarantined for e in hits.entries.values()):
            reasons.append("an entry is quarantined after a surge of matches")
        times = [frames[k].timestamp or 0.0 for k in hits.query_frames]
        ranges = merge_ranges(times, gap=interval * 1.5)
        first = min(hits.entries.values(), key=lambda e: e.id)
        dist = min(hits.query_frames.values())
        t_text = f"{t_pct:.1f}%" if t_pct is not None else "unknown"
        return Finding(
            detector=self.name,
            kind="video_match",
            signal_type="vpdq",
            signal_value=frames[min(hits.query_frames, key=lambda k: hits.query_frames[k])].value,
            bank=bank.name,
            bank_kind=bank.kind,
            entry_id=first.id,
            distance=dist,
            score=round(q_pct, 2),
            category=first.category,
            confidence="low" if reasons else "high",
            explanation=(
                f"banked video {key[:16]} in bank {bank.name!r}: {q_pct:.1f}% of query frames and {t_text} of "
                f"its frames matched; at {', '.join(f'{a:.1f}-{b:.1f}s' for a, b in ranges[:MAX_RANGES_PER_ENTRY])}"
                + (f"; low confidence: {', '.join(reasons)}" if reasons else "")
            ),
            time_range=(min(times), max(times)),
        )


def _interval(frames: list[Signal]) -> float:
    ts = sorted({f.timestamp for f in frames if f.timestamp is not None})
    if len(ts) < 2:
        return SECONDS_PER_HASH
    gaps = sorted(b - a for a, b in itertools.pairwise(ts))
    return max(gaps[len(gaps) // 2], 1e-3)
