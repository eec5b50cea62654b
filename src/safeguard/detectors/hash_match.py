"""Hash matching: signals against the banks' indexes.

For every signal with an index, the index returns candidates within the largest review threshold of
any enabled bank; candidates are then checked against the database (entry and bank enabled, the
bank's own thresholds, opinions, surge quarantine) so that a disable counts at once. A match is ``high`` confidence
when it is within the bank's match threshold, the entry is neither disputed nor quarantined after a
surge of matches (banks/quality.py) and the uploaded hash's quality is adequate; otherwise ``low`` (the default policy sends low-confidence matches to review).

Banks with ``dihedral`` set are also matched against the seven rotated and flipped variants of an
uploaded image's PDQ hash (the still decode's; not each animation frame's).

The frames of an animated or multi-frame image are matched like any image; a finding lists the frames
(``frames``) whose hash is within the bank's review threshold of the entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Engine, bindparam, select

from safeguard.content import Finding, Signal
from safeguard.detectors.base import Detector, ScanContext
from safeguard.signals import get_signal_type
from safeguard.signals.pdq import PDQ_QUALITY_FLOOR, media_dihedral_hex
from safeguard.store.driver import Prepared, json_column
from safeguard.store.models import Bank, BankEntry

DIHEDRAL_NAMES = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flip-horizontal",
    "flip-vertical",
    "transpose",
    "transverse",
)


# Candidates still enabled, with what scoring needs. Read on every match, on the request path: run on
# the DBAPI cursor (store/driver.py) outside any transaction, where a Core ``Connection``, its BEGIN
# and its rollback cost several times the query (bench/results/2026-12-06-performance-history.md, section 5, run 20). An expanding
# IN does not compile to plain SQL, so there is one statement per power-of-two count of ids (the
# last id repeated to fill it), in chunks of at most ``_MAX_IN``.
_MAX_IN = 256
_CANDIDATE_READS: dict[int, Prepared] = {}
CANDIDATE_COLUMNS = (
    BankEntry.id,
    BankEntry.signal_type,
    BankEntry.category,
    BankEntry.opinion,
    BankEntry.surge_quarantined,
    Bank.name,
    Bank.kind,
    Bank.dihedral,
    Bank.thresholds,
    Bank.review_thresholds,
)


def _candidates_stmt(n: int) -> tuple[Prepared, int]:
    size = 1 << max(n - 1, 0).bit_length()
    got = _CANDIDATE_READS.get(size)
    if got is None:
        got = _CANDIDATE_READS[size] = Prepared(
            select(*CANDIDATE_COLUMNS)
            .join(Bank, Bank.id == BankEntry.bank_id)
            .where(
                BankEntry.id.in_([bindparam(f"id{k}") for k in range(size)]),
                BankEntry.enabled.is_(True),
                Bank.enabled.is_(True),
            )
        )
    return got, size


def read_candidates(engine: Engine, ids: list[int]) -> list[tuple[Any, ...]]:
    """The enabled entries among ``ids`` in enabled banks: (id, signal type, category, opinion, surge
    quarantined, bank name, bank kind, dihedral, thresholds, review thresholds); JSON columns parsed."""
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), _MAX_IN):
        chunk = ids[start : start + _MAX_IN]
        stmt, size = _candidates_stmt(len(chunk))
        last = len(chunk) - 1
        for r in stmt.read(engine, {f"id{k}": chunk[min(k, last)] for k in range(size)}):
            out.append((*r[:4], bool(r[4]), r[5], r[6], bool(r[7]), json_column(r[8]), json_column(r[9])))
    return out


class _Entry(NamedTuple):
    id: int
    signal_type: str
    category: str | None
    opinion: str
    surge_quarantined: bool


class _Bank(NamedTuple):
    name: str
    kind: str
    dihedral: bool
    thresholds: dict[str, int]
    review_thresholds: dict[str, int]


@dataclass(frozen=True)
class _Query:
    signal: Signal
    value: str
    variant: int  # 0 = as uploaded; 1..7 dihedral variants (pdq only)


class HashMatchDetector(Detector):
    name = "hash_match"
    quick = True

    def applies(self, ctx: ScanContext) -> bool:
        return any(s.type != "vpdq" for s in ctx.signals)

    def detect(self, ctx: ScanContext) -> list[Finding]:
        return self.detect_many([ctx])[0]

    def detect_many(self, ctxs: list[ScanContext]) -> list[list[Finding]]:
        """Findings for several contents: one index call per signal type for all their hashes (MIH
        answers a batch in vectorised passes) and one database read for all their candidates."""
        res = self.resources
        res.indexes.maybe_refresh()
        banks = res.bank_cache()
        dihedral = any(b.dihedral and b.enabled for b in banks.values())
        by_type: dict[str, list[tuple[int, _Query]]] = {}
        for i, ctx in enumerate(ctxs):
            variants_added = False
            for sig in ctx.signals:
                if sig.type == "vpdq":  # video frames are matched as videos by detectors/video_match.py
                    continue
                by_type.setdefault(sig.type, []).append((i, _Query(sig, sig.value, 0)))
                if (
                    sig.type == "pdq"
                    and sig.timestamp is None
                    and not variants_added  # the still decode's variants, once (not per animation frame)
                    and dihedral
                    and ctx.media is not None
                    and ctx.media.is_image
                ):
                    variants_added = True
                    for k, (v, _q) in enumerate(media_dihedral_hex(ctx.media)):
                        if k and v != sig.value:
                            by_type[sig.type].append((i, _Query(sig, v, k)))
        candidates: list[dict[int, list[tuple[_Query, int]]]] = [{} for _ in ctxs]
        for signal_type, queries in by_type.items():
            index = res.indexes.get(signal_type)
            if index is None or len(index) == 0:
                continue
            hits = index.query_many([q.value for _, q in queries], res.indexes.query_radius(signal_type))
            for (i, q), found in zip(queries, hits, strict=True):
                for entry_id, dist in found:
                    candidates[i].setdefault(entry_id, []).append((q, dist))
        wanted = {entry_id for c in candidates for entry_id in c}
        if not wanted:
            return [[] for _ in ctxs]
        rows = read_candidates(res.db.engine, sorted(wanted))
        by_id = {r[0]: r for r in rows}
        return [self._score(c, [by_id[e] for e in c if e in by_id]) if c else [] for c in candidates]

    def _score(self, candidates: dict[int, list[tuple[_Query, int]]], rows: list[Any]) -> list[Finding]:
        findings: list[Finding] = []
        for entry, bank in ((_Entry(*r[:5]), _Bank(*r[5:])) for r in rows):
            st = get_signal_type(entry.signal_type)
            match_th = bank.thresholds.get(st.name, st.default_threshold)
            review_th = bank.review_thresholds.get(st.name, match_th)
            best: tuple[_Query, int] | None = None
            frames: set[int] = set()  # frames of an animated image within the review threshold
            for q, dist in candidates[entry.id]:
                if q.variant and not bank.dihedral:
                    continue
                if dist <= review_th and q.signal.frame is not None:
                    frames.add(q.signal.frame)
                if dist <= review_th and (best is None or dist < best[1]):
                    best = (q, dist)
            if best is None:
                continue
            q, dist = best
            reasons = []
            if dist > match_th:
                reasons.append(f"distance {dist} > match threshold {match_th}")
            if entry.opinion == "disputed":
                reasons.append("entry is disputed")
            if entry.surge_quarantined:
                reasons.append("entry is quarantined after a surge of matches")
            if q.signal.quality is not None and q.signal.quality < PDQ_QUALITY_FLOOR:
                reasons.append(f"hash quality {q.signal.quality} < {PDQ_QUALITY_FLOOR}")
            variant = f" ({DIHEDRAL_NAMES[q.variant]} variant)" if q.variant else ""
            where = f" in frame{'s' if len(frames) > 1 else ''} {', '.join(map(str, sorted(frames)))}" if frames else ""
            explanation = f"{st.name} match{variant}{where} in bank {bank.name!r} at distance {dist}" + (
                f"; low confidence: {', '.join(reasons)}" if reasons else ""
            )
            findings.append(
                Finding(
                    detector=self.name,
                    kind="hash_match",
                    signal_type=st.name,
                    signal_value=q.signal.value,
                    bank=bank.name,
                    bank_kind=bank.kind,
                    entry_id=entry.id,
                    distance=dist,
                    category=entry.category,
                    confidence="low" if reasons else "high",
                    explanation=explanation,
                    time_range=(q.signal.timestamp, q.signal.timestamp) if q.signal.timestamp is not None else None,
                    frames=tuple(sorted(frames)) if frames else None,
                )
            )
        findings.sort(key=lambda f: (f.confidence != "high", f.distance or 0, f.entry_id or 0))
        return findings
