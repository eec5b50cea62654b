"""``safeguard reports``: list, show, approve, retract and export reports (docs/reporting.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from safeguard.accounts.who import Who
from safeguard.config import Settings
from safeguard.errors import InvalidInput, NotFound, SafeguardError
from safeguard.reports.service import ReportService
from safeguard.store import Database
from safeguard.store.models import User
from safeguard.terminal import make_console

app = typer.Typer(help="Reports to law enforcement (NCMEC CyberTipline, UK NCA).", no_args_is_help=True)
console = make_console()
err = make_console(stderr=True)
#: what a shell on the server may read as: the CLI runs with the operator's access
CLI_READER = Who("cli", "auditor", "cli")


def _service() -> ReportService:
    s = Settings.from_env()
    db = Database(s.resolved_database_url)
    db.migrate()
    return ReportService(db, s)


def _who(svc: ReportService, name: str) -> Who:
    """The moderator account named by ``--as`` (approval is a person's act, recorded in their name)."""
    with svc.db.read() as s:
        u = s.execute(select(User).where(User.name == name)).scalar()
        if u is None or u.disabled_at is not None:
            raise NotFound(f"no active account named {name!r}", code="user_not_found")
        return Who.user(u.id, u.name, u.role)


def _fail(exc: SafeguardError) -> None:
    err.print(f"[red]{exc.code}[/red]: {exc}")
    raise typer.Exit(1)


@app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="a state or a comma list")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one report each")] = False,
) -> None:
    """List reports, oldest first."""
    svc = _service()
    cursor: str | None = None
    table = Table("id", "case", "user", "state", "step", "category", "NCMEC id", "error")
    try:
        while True:
            rows, cursor = svc.list_reports(CLI_READER, state=state, cursor=cursor, limit=200)
            for r in rows:
                if as_json:
                    typer.echo(json.dumps(r.to_dict()))
                else:
                    table.add_row(
                        str(r.id),
                        str(r.case_id),
                        r.reported_user,
                        r.state,
                        r.step,
                        r.category,
                        r.ncmec_report_id or "",
                        r.error or "",
                    )
            if cursor is None:
                break
    except SafeguardError as exc:
        _fail(exc)
    if not as_json:
        console.print(table)


@app.command("show")
def show(report: int) -> None:
    """A report as JSON: state, steps, NCMEC ids, errors, the XML that would be sent and its validation."""
    svc = _service()
    try:
        out = svc.get(CLI_READER, report).to_dict()
        out["steps"] = svc.steps(CLI_READER, report)
        out["preview"] = svc.preview(CLI_READER, report)
    except SafeguardError as exc:
        _fail(exc)
    typer.echo(json.dumps(out, indent=2))


@app.command("approve")
def approve(report: int, as_: Annotated[str, typer.Option("--as", help="the approving lead's account name")]) -> None:
    """Approve a draft as a lead (not the reviewer who confirmed the case)."""
    svc = _service()
    try:
        r = svc.approve(_who(svc, as_), report)
    except SafeguardError as exc:
        _fail(exc)
    console.print(f"report {r.id}: {r.state} by {r.approved_by}")


@app.command("retract")
def retract(
    report: int,
    as_: Annotated[str, typer.Option("--as", help="the retracting lead's account name")],
    reason: Annotated[str, typer.Option(help="why")] = "",
) -> None:
    """Withdraw a report before it is finished."""
    svc = _service()
    try:
        r = svc.retract(_who(svc, as_), report, reason=reason)
    except SafeguardError as exc:
        _fail(exc)
    console.print(f"report {r.id}: {r.state}")


@app.command("export")
def export(
    report: int,
    out: Annotated[Path, typer.Option("--out", help="the file to write")],
    fmt: Annotated[
        str, typer.Option("--format", help="ncmec: the CyberTipline XML; nca: the signed UK NCA package")
    ] = "ncmec",
    recipient: Annotated[Path | None, typer.Option(help="nca: encrypt to this X25519 public key (PEM)")] = None,
) -> None:
    """Write a report: ``--format ncmec`` the CyberTipline XML (validated), ``--format nca`` the signed package."""
    svc = _service()
    try:
        if fmt == "nca":
            _export_nca(svc, report, out, recipient)
            return
        if fmt != "ncmec":
            raise InvalidInput(f"format {fmt!r} is not one of ncmec, nca", code="invalid_format")
        p = svc.preview(CLI_READER, report)
    except SafeguardError as exc:
        _fail(exc)
    out.write_text(p["xml"], encoding="utf-8")
    for e in p["validation"]:
        err.print(f"[red]invalid[/red]: {e}")
    for m in p["missing"]:
        err.print(f"[yellow]missing[/yellow]: {m}")
    console.print(f"report {report} written to {out}")
    if p["validation"]:
        raise typer.Exit(2)


def _export_nca(svc: ReportService, report: int, out: Path, recipient: Path | None) -> None:
    from safeguard.evidence.vault import EvidenceVault
    from safeguard.ledger import Signer
    from safeguard.reports import package
    from safeguard.store.models import Report

    key = package.load_recipient(recipient.read_bytes()) if recipient else None
    vault = EvidenceVault(svc.settings, svc.db)
    vault.start()
    with svc.db.read() as s:
        r = s.get(Report, report)
        if r is None:
            raise NotFound(f"report {report} not found", code="report_not_found")
        blob = package.build(s, r, svc.settings, vault, Signer.from_settings(svc.settings), actor="cli")
    written = package.seal(blob, key) if key else blob
    out.write_bytes(written)
    with svc.db.write() as s:
        package.record_made(s, report, written, actor="cli", via="export", sealed=key is not None)
    console.print(f"NCA package for report {report} written to {out}" + (" (encrypted)" if key else ""))


@app.command("submit")
def submit() -> None:
    """Run the submitter once over every approved or unfinished report (for cron or tests)."""
    from safeguard.reports.ncmec.client import NcmecClient
    from safeguard.reports.submitter import Submitter

    svc = _service()
    try:
        client = NcmecClient.from_settings(svc.settings)
        got = Submitter(svc.db, svc.settings, client).run_once()
    except SafeguardError as exc:
        _fail(exc)
    typer.echo(json.dumps(got.to_dict()))
