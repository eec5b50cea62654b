"""``safeguard statements``: list DSA statements of reasons and send them to the Transparency Database
(docs/dsa.md)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from safeguard.config import Settings
from safeguard.errors import SafeguardError
from safeguard.store import Database

app = typer.Typer(help="DSA statements of reasons (EU Transparency Database).", no_args_is_help=True)


def _db(s: Settings) -> Database:
    db = Database(s.resolved_database_url)
    db.migrate()
    return db


def _fail(exc: SafeguardError) -> None:
    typer.echo(f"{exc.code}: {exc}", err=True)
    raise typer.Exit(1)


@app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="pending, sending, submitted, invalid (comma list)")] = None,
) -> None:
    """Print statements as JSON lines, oldest first."""
    from safeguard.dsa.service import list_statements

    db = _db(Settings.from_env())
    cursor: str | None = None
    try:
        while True:
            rows, cursor = list_statements(db, cursor=cursor, state=state, limit=500)
            for r in rows:
                typer.echo(json.dumps(r))
            if cursor is None:
                break
    except SafeguardError as exc:
        _fail(exc)


@app.command("submit")
def submit(
    watch: Annotated[bool, typer.Option("--watch", help="keep running: a pass every --interval seconds")] = False,
    interval: Annotated[float, typer.Option(help="seconds between passes with --watch", min=1.0)] = 60.0,
) -> None:
    """Send pending statements to the Transparency Database in batches: one pass (for cron or tests), or
    continuously with --watch. Prints each pass's outcome as JSON."""
    from safeguard.dsa.client import DsaClient
    from safeguard.dsa.submitter import StatementSubmitter

    s = Settings.from_env()
    db = _db(s)
    try:
        submitter = StatementSubmitter(db, s, DsaClient.from_settings(s))
        while True:
            got = submitter.run_once()
            typer.echo(json.dumps(got.to_dict()), nl=True)
            if not watch:
                if got.error:  # a refused token or an unreachable database: cron must see it
                    raise typer.Exit(1)
                break
            time.sleep(interval)
    except SafeguardError as exc:
        _fail(exc)
