"""``safeguard backfill``: hash a media store in batches on a GPU (or the CPU) and match it against banks.

A backfill answers "which of the files we already hold match the banks?" after a hash list grows. It
reports; it does not decide: no decision or event is recorded, no action runs. The matches it prints
are the files to pass through ``safeguard scan`` (or ``/v1/scan``), which applies the policy and records
the decisions. Thresholds are the banks' own: an entry is reported up to the bank's PDQ review
threshold, labelled ``match`` within its match threshold and ``review`` beyond it, as the hash-match
detector does. Disabled banks and entries are left out. Banks marked dihedral are also matched against the seven
rotated and flipped variants of each file's hash, as in a scan (``variant`` 1-7 in the output).

The command is registered in ``safeguard.cli``; this module imports torch only when it runs, so the
CLI starts without the ``gpu`` extra installed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from safeguard.errors import ConfigError, InvalidInput, NotFound, SafeguardError
from safeguard.index.hamming import hex_to_words
from safeguard.signals.base import noncanonical_hex
from safeguard.store import Database
from safeguard.store.models import Bank, BankEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BankInfo:
    name: str
    match_threshold: int
    review_threshold: int
    dihedral: bool


@dataclass
class PDQBankEntries:
    """Every enabled PDQ entry of the chosen banks, as arrays (row order = matcher row order)."""

    entry_ids: np.ndarray
    bank_ids: np.ndarray
    categories: list[str | None]
    words: np.ndarray
    banks: dict[int, BankInfo]

    @property
    def search_radius(self) -> int:
        return max((b.review_threshold for b in self.banks.values()), default=0)

    @property
    def dihedral(self) -> bool:
        return any(b.dihedral for b in self.banks.values())


def load_pdq_entries(db: Database, bank_names: list[str] | None, default_threshold: int) -> PDQBankEntries:
    with db.read() as s:
        chosen = Bank.name.in_(bank_names) if bank_names else Bank.enabled.is_(True)
        banks = list(s.execute(select(Bank).where(chosen)).scalars())
        missing = sorted(set(bank_names or []) - {b.name for b in banks})
        if missing:
            raise NotFound(f"no such bank: {', '.join(missing)}")
        disabled = sorted(b.name for b in banks if not b.enabled)
        if disabled:
            raise InvalidInput(f"bank disabled: {', '.join(disabled)}")
        meta: dict[int, BankInfo] = {}
        for b in banks:
            match_th = int(b.thresholds.get("pdq", default_threshold))
            meta[b.id] = BankInfo(b.name, match_th, int(b.review_thresholds.get("pdq", match_th)), bool(b.dihedral))
        rows = (
            s.execute(
                select(BankEntry.id, BankEntry.bank_id, BankEntry.value, BankEntry.category)
                .where(BankEntry.signal_type == "pdq", BankEntry.enabled.is_(True), BankEntry.bank_id.in_(list(meta)))
                .order_by(BankEntry.id)
            ).all()
            if meta
            else []
        )
    bad = set(noncanonical_hex([r[2] for r in rows], 64))
    if bad:  # a row the index cannot load (see index/manager.py): skipped here too, never a crash
        log.warning(
            "skipping %d PDQ entries whose stored value is not 64 hex characters (ids %s); "
            "`safeguard serve` quarantines them",
            len(bad),
            sorted(int(rows[k][0]) for k in bad)[:20],
        )
        rows = [r for k, r in enumerate(rows) if k not in bad]
    return PDQBankEntries(
        entry_ids=np.array([r[0] for r in rows], dtype=np.int64),
        bank_ids=np.array([r[1] for r in rows], dtype=np.int64),
        categories=[r[3] for r in rows],
        words=hex_to_words([r[2] for r in rows], 4),
        banks=meta,
    )


def _read_all(paths: list[Path]) -> Iterator[tuple[Path, bytes]]:
    for p in paths:
        try:
            yield p, p.read_bytes()
        except OSError:
            yield p, b""  # reported as empty_media by the decoder, like an empty file


def backfill(
    paths: Annotated[list[Path], typer.Argument(help="files or directories (searched recursively)")],
    bank: Annotated[
        list[str] | None, typer.Option("--bank", help="bank to match (repeatable); default: every enabled bank")
    ] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")] = "auto",
    batch_size: Annotated[int, typer.Option(help="images decoded and hashed together")] = 64,
    decode: Annotated[
        str, typer.Option(help="CPU decoding: exact (full decode) or fast (JPEG DCT-scaled luma, as SAFEGUARD_PDQ_*)")
    ] = "exact",
    as_json: Annotated[bool, typer.Option("--jsonl", help="one JSON line per file: pdq, quality, matches")] = False,
    matcher_kind: Annotated[
        str,
        typer.Option(
            "--matcher",
            help="auto (a GPU scans the bank; the CPU builds the hash index when the file count makes it pay), "
            "index (the exact multi-index hashing index, on the CPU) or scan (every entry, on the device)",
        ),
    ] = "auto",
    threads: Annotated[
        int, typer.Option(help="torch threads when hashing on the CPU (default 0: one per core)", min=0)
    ] = 0,
) -> None:
    """Hash files in batches on a GPU (or the CPU) and report which match the banks' PDQ entries."""
    from safeguard.cli import common as cli
    from safeguard.gpu.device import require_torch

    if decode not in ("exact", "fast"):
        raise typer.BadParameter("--decode must be exact or fast")
    if matcher_kind not in ("auto", "index", "scan"):
        raise typer.BadParameter("--matcher must be auto, index or scan")
    try:
        require_torch()
    except ConfigError as exc:
        cli.err.print(f"[red]{escape(exc.message)}")
        raise typer.Exit(2) from None
    from safeguard.gpu.match import IndexMatcher, TorchMatcher, pick_matcher
    from safeguard.gpu.pipeline import BatchHasher
    from safeguard.signals import get_signal_type

    s = cli.settings()
    files = cli.iter_files(paths)
    e = cli.engine()
    try:
        entries = load_pdq_entries(e.db, bank, get_signal_type("pdq").default_threshold)
    except SafeguardError as exc:
        cli.err.print(f"[red]{exc.code}: {escape(exc.message)}")
        raise typer.Exit(1) from None
    finally:
        e.close()
    try:
        hasher = BatchHasher(
            device,
            batch_size=batch_size,
            draft=s.pdq_draft_size if decode == "fast" else 0,
            max_pixels=s.max_image_pixels,
            dihedral=entries.dihedral,
        )
    except ConfigError as exc:
        cli.err.print(f"[red]{escape(exc.message)}")
        raise typer.Exit(2) from None
    if hasher.device.type == "cpu":
        # Safeguard's processes default to one BLAS/OpenMP thread (safeguard/__init__.py), which suits a
        # service's worker processes; this is one bulk job, and its batched hashing scales with the cores
        # (1,024 720p JPEGs, 1M bank, 2 cores: 42.3 img/s with 2 threads, 32.0-33.6 with one)
        import torch

        torch.set_num_threads(threads or os.cpu_count() or 1)
    cli.err.print(f"device: {hasher.describe()}")
    cli.err.print(f"{len(files)} files; {len(entries.entry_ids)} PDQ entries in {len(entries.banks)} bank(s)")
    started = time.perf_counter()  # images/s counts the matcher's set-up too
    rows = np.arange(len(entries.entry_ids))  # the matchers' ids are rows of ``entries``
    n_queries = len(files) * (8 if entries.dihedral else 1)
    if matcher_kind == "auto":
        matcher_kind = pick_matcher(hasher.device, len(rows), n_queries)
    matcher: IndexMatcher | TorchMatcher
    if matcher_kind == "index":
        cli.err.print(f"building the hash index of {len(rows):,} entries on the CPU ...")
        built = time.perf_counter()
        matcher = IndexMatcher(rows, entries.words)
        cli.err.print(f"matching with the hash index (built in {time.perf_counter() - built:.1f} s)")
    else:
        matcher = TorchMatcher(rows, entries.words, device=hasher.device)
        cli.err.print(f"matching by scanning every entry on {hasher.device} ({matcher.method})")
    radius = entries.search_radius
    counts = {"hashed": 0, "matched": 0, "error": 0}
    table = Table("file", "bank", "entry", "distance", "level", "category", title="files matching bank entries")
    with hasher, cli.progress() as prog:
        task = prog.add_task(f"hashing on {hasher.device}", total=len(files))
        batch: list[tuple[Path, Any]] = []

        def flush() -> None:
            ok = [r for _, r in batch if not isinstance(r, SafeguardError)]
            per = 8 if entries.dihedral else 1
            queries = [v for r in ok for v in (r.variants if entries.dihedral else (r.hash,))]
            found = matcher.match_hex(queries, radius) if queries else []
            hits = iter([found[per * k : per * k + per] for k in range(len(ok))])  # in the order of ``ok``
            for p, r in batch:
                if isinstance(r, SafeguardError):
                    counts["error"] += 1
                    cli.err.print(f"[red]{escape(str(p))}: {r.code}: {escape(r.message)}")
                    if as_json:
                        print(json.dumps({"path": str(p), "error": r.to_dict()["error"]}))
                    continue
                counts["hashed"] += 1
                matches = _matches(entries, next(hits))
                counts["matched"] += bool(matches)
                if as_json:
                    print(json.dumps({"path": str(p), "pdq": r.hash, "quality": r.quality, "matches": matches}))
                for m in matches:
                    table.add_row(
                        str(p), m["bank"], str(m["entry_id"]), str(m["distance"]), m["level"], m["category"] or ""
                    )
            prog.advance(task, len(batch))
            batch.clear()

        for item in hasher.iter_hash(_read_all(files)):
            batch.append(item)
            if len(batch) >= hasher.batch_size:
                flush()
        flush()
    elapsed = time.perf_counter() - started
    if not as_json:
        if table.row_count:
            cli.console.print(table)
        summary = Table("hashed", "matched", "error", "images/s", "device", "matcher", title=f"{len(files)} files")
        rate = f"{counts['hashed'] / elapsed:.1f}" if elapsed > 0 else "-"
        summary.add_row(
            str(counts["hashed"]),
            str(counts["matched"]),
            str(counts["error"]),
            rate,
            str(hasher.device),
            matcher_kind if matcher_kind == "index" else f"scan ({matcher.method})",
        )
        cli.console.print(summary)
    if counts["error"]:
        raise typer.Exit(1)


def _matches(entries: PDQBankEntries, variant_hits: list[list[tuple[int, int]]]) -> list[dict[str, Any]]:
    """Matcher hits, one list per hash variant, of (row, distance) -> reportable matches: the nearest
    variant per entry (variants 1-7 only for dihedral banks), within the bank's review threshold."""
    best: dict[int, tuple[int, int]] = {}  # row -> (distance, variant)
    for variant, hits in enumerate(variant_hits):
        for row, dist in hits:
            bank = entries.banks[int(entries.bank_ids[row])]
            if dist > bank.review_threshold or (variant and not bank.dihedral):
                continue
            if row not in best or (dist, variant) < best[row]:
                best[row] = (dist, variant)
    out = []
    for row, (dist, variant) in sorted(best.items(), key=lambda kv: (kv[1], kv[0])):
        bank = entries.banks[int(entries.bank_ids[row])]
        out.append(
            {
                "bank": bank.name,
                "entry_id": int(entries.entry_ids[row]),
                "distance": dist,
                "level": "match" if dist <= bank.match_threshold else "review",
                "variant": variant,
                "category": entries.categories[row],
            }
        )
    return out
