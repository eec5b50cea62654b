"""Scanning and hashing files from the command line: ``scan`` and ``hash``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safeguard.cli.apps import app
from safeguard.cli.common import actor, console, engine, err, iter_files, progress, settings
from safeguard.errors import SafeguardError, UnsupportedMedia


# -- scanning and hashing -----------------------------------------------------------------------
@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help="files or directories")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON decision per line")] = False,
    user_id: str | None = None,
) -> None:
    """Scan files against the banks and record a decision for each, as /v1/scan does.

    Files that are not media (no image or video signature) are skipped and counted. Exit status: 0 when
    every media file was scanned, whatever the verdicts; 1 when any could not be decoded (corrupt,
    truncated, too large)."""
    from safeguard.content import Content, ContentKind

    e = engine(load_indexes=True, start_actions=True)
    files = iter_files(paths)
    counts = {"allow": 0, "review": 0, "block": 0, "error": 0, "skipped": 0}
    rows: list[tuple[str, str, str]] = []
    with progress() as prog:
        task = prog.add_task("scanning", total=len(files))
        for p in files:
            try:
                data = p.read_bytes()
                media = e.media_for(data)
                kind = ContentKind.VIDEO if media.is_video else ContentKind.IMAGE
                d = e.scan(
                    Content(kind=kind, data=data, content_id=str(p), user_id=user_id, filename=p.name),
                    actor=actor(),
                    media=media,
                )
                counts[d.verdict.value] += 1
                if as_json:
                    print(json.dumps({"path": str(p), **d.to_dict()}))
                if d.findings or d.verdict.value != "allow":
                    f = d.findings[0]
                    rows.append(
                        (
                            str(p),
                            d.verdict.value,
                            f"{f.bank} #{f.entry_id} {f.signal_type} d={f.distance} {f.category or ''}",
                        )
                    )
            except UnsupportedMedia as exc:  # not media at all (a text file beside the images): skipped
                counts["skipped"] += 1
                if as_json:
                    print(json.dumps({"path": str(p), "skipped": exc.to_dict()["error"]}))
            except SafeguardError as exc:
                counts["error"] += 1
                rows.append((str(p), "error", f"{exc.code}: {exc.message}"))
                if as_json:
                    print(json.dumps({"path": str(p), "error": exc.to_dict()["error"]}))
            prog.advance(task)
    if not as_json:
        if rows:
            t = Table("file", "verdict", "first finding", title="files with findings or errors")
            for r in rows:
                t.add_row(*r)
            console.print(t)
        s = Table(*counts, title=f"{len(files)} files scanned")
        s.add_row(*(str(n) for n in counts.values()))
        console.print(s)
    if counts["error"]:
        raise typer.Exit(1)


@app.command("hash")
def hash_files(
    paths: Annotated[list[Path], typer.Argument(help="files or directories")],
    format: Annotated[
        str,
        typer.Option(help="table; csv (sha256,md5,pdq,quality,path); pdq (pdq-photo-hasher: hash,quality,path); jsonl"),
    ] = "table",
    as_scan: Annotated[
        bool,
        typer.Option(
            "--as-scan", help="hash as /v1/scan does under SAFEGUARD_PDQ_DECODE (default: the reference decode)"
        ),
    ] = False,
) -> None:
    """Print SHA-256, MD5 and PDQ (hex, with quality) for each file.

    By default PDQ is the reference hash (a full decode), the value `safeguard bank add` stores; with
    --as-scan it is what a scan of the file records (the fast decode unless SAFEGUARD_PDQ_DECODE=exact)."""
    from safeguard.media import Media
    from safeguard.signals import compute_signals

    s = settings()
    failed = 0
    draft = s.hash_draft if as_scan else 0

    def results() -> Iterator[tuple[Path, dict[str, Any] | SafeguardError]]:
        for p in iter_files(paths):
            try:
                media = Media.from_bytes(p.read_bytes(), max_pixels=s.max_image_pixels, hash_draft=draft)
                sigs = compute_signals(media)
                yield p, {g.type: g for g in sigs}
            except SafeguardError as exc:
                yield p, exc

    table = Table("file", "sha256", "md5", "pdq", "quality") if format == "table" else None
    if format == "csv":
        print("sha256,md5,pdq,quality,path")
    for p, r in results():
        if isinstance(r, SafeguardError):
            failed += 1
            err.print(f"[red]{p}: {r.code}: {r.message}")
            continue
        sha, md5, pdq = r.get("sha256"), r.get("md5"), r.get("pdq")
        pdq_v = pdq.value if pdq else ""
        q = str(pdq.quality) if pdq else ""
        if table is not None:
            table.add_row(str(p), sha.value if sha else "", md5.value if md5 else "", pdq_v, q)
        elif format == "csv":
            print(f"{sha.value if sha else ''},{md5.value if md5 else ''},{pdq_v},{q},{p}")
        elif format == "pdq":
            if pdq:
                print(f"{pdq_v},{q},{p}")
        elif format == "jsonl":
            print(json.dumps({"path": str(p), **{k: v.to_dict() for k, v in r.items()}}))
        else:
            raise typer.BadParameter(f"unknown format {format!r}")
    if table is not None:
        console.print(table)
    if failed:
        raise typer.Exit(1)
