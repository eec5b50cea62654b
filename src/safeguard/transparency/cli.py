"""``safeguard transparency``: generate a report for a period, and verify one against the log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from safeguard.config import Settings
from safeguard.errors import SafeguardError
from safeguard.store import Database
from safeguard.terminal import make_console
from safeguard.transparency import generate, parse_period, parse_scope, verify_file
from safeguard.transparency.period import check_format

app = typer.Typer(help="Transparency reports computed from the event log (docs/transparency.md).", no_args_is_help=True)
err = make_console(stderr=True)
out = make_console()


def _db() -> tuple[Database, Settings]:
    s = Settings.from_env()
    db = Database(s.resolved_database_url)
    db.migrate()
    return db, s


@app.command("report")
def report(
    start: Annotated[str, typer.Option("--from", help="first day (YYYY-MM-DD) or ISO 8601 time")],
    end: Annotated[str, typer.Option("--to", help="last day, inclusive (YYYY-MM-DD), or an exclusive ISO time")],
    fmt: Annotated[str, typer.Option("--format", help="html, json or csv")] = "json",
    out_file: Annotated[Path | None, typer.Option("--out", help="write here instead of standard output")] = None,
    territory: Annotated[
        str | None, typer.Option("--territory", help="only decisions on users in this territory (e.g. DE, or EU)")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="only decisions made for this tenant")] = None,
) -> None:
    """Compute a transparency report for a period from the event log."""
    try:
        period = parse_period(start, end)
        scope = parse_scope(territory, tenant)
        check_format(fmt)
        db, settings = _db()
        try:
            text = generate(db, settings, period, fmt, scope)
        finally:
            db.dispose()
    except SafeguardError as exc:
        err.print(f"[red]{exc.code}[/red]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if out_file is None:
        typer.echo(text, nl=False)
    else:
        out_file.write_text(text, encoding="utf-8")
        err.print(f"wrote {out_file}", highlight=False)


@app.command("verify")
def verify(report_file: Annotated[Path, typer.Argument(help="a report written with --format json")]) -> None:
    """Recompute every figure of a JSON report from the log; exit 1 and list the differences on any mismatch."""
    try:
        db, _ = _db()
        try:
            v = verify_file(db, report_file)
        finally:
            db.dispose()
    except SafeguardError as exc:
        err.print(f"[red]{exc.code}[/red]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if v.ok:
        out.print(f"ok: {v.figures_checked} figures recomputed, {v.events_checked} events re-chained", highlight=False)
        return
    err.print(f"[red]MISMATCH[/red]: {len(v.differences)} difference(s)", highlight=False)
    for d in v.differences:
        err.print(f"  {d}", highlight=False, markup=False)
    raise typer.Exit(1)
