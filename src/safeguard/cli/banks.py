"""Hash banks and their entries: ``bank create|list|show|set|add|import|export|entries|pull|quality|release|...``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safeguard import registry
from safeguard.cli.apps import bank_app
from safeguard.cli.common import actor, banks, console, emit_json, engine, err, iter_files, progress, settings
from safeguard.errors import SafeguardError
from safeguard.exchange.outbox import PYTX_SOURCES


# -- banks --------------------------------------------------------------------------------------
def _parse_thresholds(values: list[str]) -> dict[str, int]:
    out = {}
    for v in values:
        name, _, num = v.partition("=")
        if not num.isdigit():
            raise typer.BadParameter(f"expected SIGNAL=DISTANCE, got {v!r}")
        out[name] = int(num)
    return out


@bank_app.command("create")
def bank_create(
    name: str,
    kind: Annotated[str, typer.Option(help="csam, ncii, terror, other or negative (known-benign)")] = "csam",
    description: str = "",
    category: Annotated[str | None, typer.Option(help="default category for entries")] = None,
    threshold: Annotated[list[str], typer.Option(help="match threshold, e.g. pdq=31")] = [],  # noqa: B006
    review_threshold: Annotated[list[str], typer.Option(help="review threshold, e.g. pdq=40")] = [],  # noqa: B006
    dihedral: Annotated[bool, typer.Option(help="also match rotations and flips")] = False,
    shareable: bool = False,
) -> None:
    """Create a bank."""
    b = banks().create(
        name,
        actor=actor(),
        kind=kind,
        description=description,
        default_category=category,
        thresholds=_parse_thresholds(threshold),
        review_thresholds=_parse_thresholds(review_threshold),
        dihedral=dihedral,
        shareable=shareable,
    )
    console.print(f"bank [bold]{b.name}[/] created (id {b.id}, kind {b.kind}, thresholds {b.thresholds})")


@bank_app.command("list")
def bank_list() -> None:
    """List banks with their entry counts."""
    t = Table("id", "name", "kind", "entries", "enabled", "dihedral", "thresholds", "version")
    for b in banks().list_banks():
        t.add_row(
            str(b.id),
            b.name,
            b.kind,
            str(b.entry_count),
            str(b.enabled),
            str(b.dihedral),
            json.dumps(b.thresholds),
            str(b.version),
        )
    console.print(t)


@bank_app.command("show")
def bank_show(bank: str) -> None:
    """Show one bank."""
    emit_json(banks().describe(bank).to_dict())


@bank_app.command("set")
def bank_set(
    bank: str,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled")] = None,
    dihedral: Annotated[bool | None, typer.Option("--dihedral/--no-dihedral")] = None,
    threshold: Annotated[list[str], typer.Option(help="e.g. pdq=31")] = [],  # noqa: B006
    review_threshold: Annotated[list[str], typer.Option(help="e.g. pdq=40")] = [],  # noqa: B006
    kind: str | None = None,
    category: str | None = None,
    shareable: Annotated[
        bool | None, typer.Option("--shareable/--no-shareable", help="served to the partner keys it is shared with")
    ] = None,
) -> None:
    """Change a bank's settings."""
    changes: dict[str, Any] = {"enabled": enabled, "dihedral": dihedral, "kind": kind, "default_category": category}
    changes["shareable"] = shareable
    if threshold:
        changes["thresholds"] = _parse_thresholds(threshold)
    if review_threshold:
        changes["review_thresholds"] = _parse_thresholds(review_threshold)
    emit_json(banks().update(bank, actor=actor(), **{k: v for k, v in changes.items() if v is not None}).to_dict())


@bank_app.command("add")
def bank_add(
    bank: str,
    files: Annotated[list[Path], typer.Argument(help="media files or directories")],
    category: Annotated[str | None, typer.Option(help="category for the new entries")] = None,
    source: str = "moderator",
) -> None:
    """Hash files and add every signal they yield (SHA-256, MD5, PDQ) to a bank."""
    from safeguard.banks.sources.base import Row, signal_rows
    from safeguard.media import Media
    from safeguard.signals import compute_signals

    svc = banks()
    s = settings()
    svc.describe(bank)
    rows: list[Row] = []
    failed = 0
    paths = iter_files(files)
    with progress() as prog:
        task = prog.add_task("hashing", total=len(paths))
        for p in paths:
            try:
                sigs = compute_signals(Media.from_bytes(p.read_bytes(), max_pixels=s.max_image_pixels))
                rows.extend(
                    signal_rows(
                        sigs,
                        category=category,
                        source=source,
                        provenance={"filename": p.name},
                        first_line=len(rows) + 1,
                    )
                )
            except SafeguardError as exc:
                failed += 1
                err.print(f"[red]{p}: {exc.code}: {exc.message}")
            prog.advance(task)
    res = svc.import_rows(bank, rows, actor=actor(), source=source)
    console.print(
        f"{len(paths) - failed} files hashed, {res.added_or_updated} entries added or updated"
        + (f", [red]{failed} files failed" if failed else "")
    )
    if failed:
        raise typer.Exit(1)


def _detect_format(path: Path, fmt: str | None) -> Any:
    from safeguard.banks.sources.base import HashListFormat

    if fmt is None:
        for name in registry.sources.names():
            cls = registry.sources.get(name)
            if path.suffix.lower() in cls.extensions:
                fmt = name
                break
    if fmt is None:
        raise typer.BadParameter(f"cannot tell the format of {path.name}; pass --format ({registry.sources.names()})")
    inst = registry.sources.get(fmt)()
    assert isinstance(inst, HashListFormat)
    return inst


@bank_app.command("import")
def bank_import(
    bank: str,
    path: Path,
    format: Annotated[str | None, typer.Option(help="csv or jsonl (default: from the extension)")] = None,
    source: Annotated[str, typer.Option(help="source recorded on each entry, e.g. ncmec")] = "",
    batch_size: int = 5000,
) -> None:
    """Import a hash list (CSV or JSONL); rejected rows are reported with their line numbers."""
    fmt = _detect_format(path, format)
    svc = banks()
    svc.describe(bank)
    total = sum(1 for _ in path.open("rb"))
    with path.open(encoding="utf-8-sig", errors="strict") as fp, progress() as prog:
        task = prog.add_task(f"importing {path.name}", total=total)
        try:
            res = svc.import_rows(
                bank,
                fmt.parse(fp),
                actor=actor(),
                source=source,
                batch_size=batch_size,
                progress=lambda n: prog.update(task, completed=min(total, prog.tasks[0].completed + n)),
            )
        except UnicodeDecodeError as exc:
            raise SafeguardError(f"{path}: not valid UTF-8 ({exc.reason})", code="invalid_encoding") from exc
        prog.update(task, completed=total)
    console.print(
        f"{res.rows_read} rows read: {res.added_or_updated} added or updated, {res.deleted} deleted, "
        f"{len(res.errors)} rejected"
    )
    if res.errors:
        t = Table("line", "code", "problem", title="rejected rows")
        for e in res.errors[:50]:
            t.add_row(str(e.line), e.code, e.message)
        err.print(t)
        if len(res.errors) > 50:
            err.print(f"... and {len(res.errors) - 50} more")
        raise typer.Exit(2)


@bank_app.command("export")
def bank_export(
    bank: str,
    format: Annotated[str, typer.Option(help="csv or jsonl")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default: stdout)")] = None,
    include_disabled: bool = False,
) -> None:
    """Export a bank as a hash list."""
    fmt = registry.sources.get(format)()
    svc = banks()
    rows = svc.export(bank, include_disabled=include_disabled)
    if output is None:
        n = fmt.write(rows, sys.stdout)
    else:
        with output.open("w", encoding="utf-8") as fp:
            n = fmt.write(rows, fp)
    err.print(f"{n} entries exported")


@bank_app.command("entries")
def bank_entries(bank: str, limit: int = 50, after_id: int = 0) -> None:
    """List a bank's entries."""
    t = Table("id", "type", "value", "category", "source", "enabled", "opinion")
    for e in banks().list_entries(bank, limit=limit, after_id=after_id):
        t.add_row(
            str(e.id),
            e.signal_type,
            e.value,
            e.category or "",
            e.source,
            str(e.enabled),
            e.opinion,
        )
    console.print(t)


@bank_app.command("disable-entry")
def bank_disable_entry(entry_id: int, reason: str = "") -> None:
    """Disable an entry (it stops matching at once, in every process)."""
    e = banks().set_enabled(entry_id, False, actor=actor(), reason=reason)
    console.print(f"entry {e.id} in bank {e.bank} disabled")


@bank_app.command("enable-entry")
def bank_enable_entry(entry_id: int, reason: str = "") -> None:
    """Re-enable a disabled entry."""
    e = banks().set_enabled(entry_id, True, actor=actor(), reason=reason)
    console.print(f"entry {e.id} in bank {e.bank} enabled")


@bank_app.command("opinion")
def bank_opinion(
    entry_id: int, opinion: Annotated[str, typer.Argument(help="confirmed, disputed or none")], note: str = ""
) -> None:
    """Record an opinion on an entry (a disputed entry's matches go to review, not block)."""
    e = banks().add_opinion(entry_id, opinion, actor=actor(), note=note)
    console.print(f"entry {e.id} in bank {e.bank}: {e.opinion}")


#: the purpose a sealed credentials file for ``bank pull`` is sealed with (``safeguard secrets seal --purpose``)
CREDENTIALS_PURPOSE = "exchange-credentials"


def _credentials(path: Path) -> str:
    """A credentials file's content: as written, or opened when it holds a sealed value (``sgs1.``)."""
    from safeguard import secrets as sealed

    text = path.read_text(encoding="utf-8").strip()
    return sealed.open_(settings(), text, purpose=CREDENTIALS_PURPOSE) if sealed.is_sealed(text) else text


@bank_app.command("pull")
def bank_pull(
    bank: str,
    file: Annotated[Path | None, typer.Option(help="a local list: '<type> <hash>' per line")] = None,
    url: Annotated[str | None, typer.Option(help="the same list at an http(s) URL (egress policy applies)")] = None,
    stopncii: Annotated[
        str | None, typer.Option(help="StopNCII API base URL, e.g. https://api.stopncii.org/v1")
    ] = None,
    keys_file: Annotated[
        Path | None, typer.Option(help="StopNCII keys: 'FETCH_KEY,SUBSCRIPTION_KEY[,FEEDBACK_KEY]'")
    ] = None,
    threatexchange: Annotated[int | None, typer.Option(help="a ThreatExchange privacy group id")] = None,
    token_file: Annotated[Path | None, typer.Option(help="ThreatExchange access token: 'APP_ID|SECRET'")] = None,
    te_url: Annotated[str, typer.Option(help="ThreatExchange Graph API base URL")] = "https://graph.facebook.com/v26.0",
    ncmec: Annotated[
        str | None, typer.Option(help="NCMEC hash sharing base URL, e.g. https://report.cybertip.org/hashsharing")
    ] = None,
    credentials_file: Annotated[Path | None, typer.Option(help="NCMEC credentials: 'USER:PASSWORD'")] = None,
    member: Annotated[
        list[int] | None, typer.Option(help="NCMEC: only entries from this member (ESP) id; repeatable")
    ] = None,
    dispute_reason: Annotated[
        str | None, typer.Option(help="NCMEC: the negative-feedback reason GUID sent with a dispute")
    ] = None,
    signal_type: Annotated[str | None, typer.Option(help="type of bare hashes in a list (pdq, md5, ...)")] = None,
    checkpoint_file: Annotated[Path | None, typer.Option(help="resume from and save the checkpoint here")] = None,
) -> None:
    """Fetch another exchange into a bank through python-threatexchange (docs/quality.md#other-exchanges)."""
    from safeguard.banks.sources import pytx

    chosen = [x for x in (file, url, stopncii, threatexchange, ncmec) if x]
    if len(chosen) != 1:
        raise SafeguardError(
            "give exactly one of --file, --url, --stopncii, --threatexchange, --ncmec",
            code="invalid_source",
            status=422,
        )
    source: Any
    if file is not None:
        source = pytx.FileListSource(file, signal_type=signal_type)
    elif url is not None:
        source = pytx.URLListSource(url, settings(), signal_type=signal_type)
    elif threatexchange is not None:
        if token_file is None:
            raise SafeguardError("--threatexchange needs --token-file", code="invalid_source", status=422)
        token = _credentials(token_file)
        source = pytx.ThreatExchangeSource(threatexchange, settings(), api_token=token, base_url=te_url)
    elif ncmec is not None:
        if credentials_file is None:
            raise SafeguardError("--ncmec needs --credentials-file", code="invalid_source", status=422)
        user, _, password = _credentials(credentials_file).partition(":")
        source = pytx.NCMECSource(
            ncmec,
            settings(),
            username=user,
            password=password,
            only_esp_ids=tuple(member or ()),
            dispute_reason=dispute_reason,
        )
    else:
        if keys_file is None:
            raise SafeguardError("--stopncii needs --keys-file", code="invalid_source", status=422)
        fetch_key, sub_key, feedback_key = [*_credentials(keys_file).split(",", 2), "", ""][:3]
        source = pytx.StopNCIISource(
            str(stopncii), settings(), fetch_key=fetch_key, subscription_key=sub_key, feedback_key=feedback_key
        )
    svc = banks()
    svc.describe(bank)
    if isinstance(source, pytx.PytxSource) and source.exchange in PYTX_SOURCES:
        # moderators' opinions on this exchange's entries go back first, with the same credentials
        from safeguard.exchange.pytx_opinions import send_opinions

        sent = send_opinions(svc.db, bank, source, actor=actor())
        if sent.sent or sent.error:
            console.print(f"{sent.sent} opinions sent to {source.exchange}")
        if sent.error is not None:
            err.print(f"opinions not sent (kept, tried again next pull): {sent.error.code}: {sent.error.message}")
    res = pytx.pull(svc, bank, source, checkpoint_file, actor=actor())
    console.print(
        f"{res.batches} batches: {res.added_or_updated} added or updated, {res.deleted} deleted, "
        f"{len(res.rejected)} rejected"
    )
    for e in res.rejected[:20]:
        err.print(f"row {e.line}: {e.code}: {e.message}")


@bank_app.command("quality")
def bank_quality(bank: str, top: int = 20) -> None:
    """A bank's quality figures as JSON: precision by source, top entries by matches, quarantined entries."""
    from safeguard.banks import quality

    emit_json(quality.bank_quality(engine().db, bank, top=top))


@bank_app.command("release")
def bank_release(bank: str, entry_id: int, note: str = "") -> None:
    """Release an entry quarantined after a surge of matches (its matches block again)."""
    from safeguard.banks import quality

    e = quality.release(engine().db, bank, entry_id, actor=actor(), note=note)
    console.print(f"entry {e['id']} in bank {bank} released")
