"""Running the service: ``serve``, ``worker``, ``settings``, ``db upgrade``, ``policy check``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safeguard.cli.apps import app, db_app, policy_app
from safeguard.cli.common import console, engine, settings
from safeguard.config import SETTINGS


# -- service ------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes")] = None,
    balance: Annotated[
        str | None, typer.Option(help="spread connections over workers: dispatch (in turn) or reuseport (kernel hash)")
    ] = None,
) -> None:
    """Run the HTTP API (migrates the database first)."""
    from safeguard.api.workers import BALANCES
    from safeguard.api.workers import run as run_workers

    s = settings()
    e = engine(start_actions=True)  # refuses to start without what the policy's actions need (the vault key)
    e.indexes.load()
    e.indexes.save_snapshots()
    e.close()
    host = host or s.host
    port = port or s.port
    url = f"http://{host}:{port}"
    console.print(f"[bold green]Safeguard[/] on {url}  (database: {s.resolved_database_url})")
    console.print(f"  API docs:   {url}/docs   (OpenAPI: {url}/openapi.json)")
    console.print("  API key:    safeguard keys create --role platform   (also moderator, admin, auditor)")
    balance = balance or s.serve_balance
    if balance not in BALANCES:
        raise typer.BadParameter(f"--balance must be one of {', '.join(BALANCES)}", param_hint="--balance")
    # several workers: the parent hands connections to them in turn (or a socket each, SO_REUSEPORT)
    rc = run_workers(host, port, workers or s.workers, s.log_level, balance=balance)
    if rc:
        raise typer.Exit(rc)


@app.command()
def worker() -> None:
    """Run the webhook delivery worker and the exchange follower on their own (when API processes run with
    SAFEGUARD_RUN_WORKER=0)."""
    from safeguard.ledger import CheckpointTimer
    from safeguard.webhook_store import seal_at_start
    from safeguard.workers.outbox import OutboxWorker

    e = engine()
    seal_at_start(e.db, e.settings, actor="worker")
    timer = CheckpointTimer(e.db, e.settings)
    timer.start()
    from safeguard.exchange.follower import ExchangeService, Follower

    follower = Follower(ExchangeService(e.db, e.settings), e.settings.exchange_poll_seconds)
    follower.start()  # partners' feeds too (docs/sharing.md)
    console.print("delivering webhooks from the outbox; Ctrl-C to stop")
    with contextlib.suppress(KeyboardInterrupt):
        OutboxWorker(e.db, e.settings).run_forever()
    follower.stop()
    timer.stop()


@app.command("settings")
def show_settings() -> None:
    """Print every setting, its environment variable, current value and meaning."""
    s = settings()
    t = Table("variable", "value", "default", "meaning")
    for st in SETTINGS:
        value = getattr(s, st.name)
        if "secret" in st.name and value:
            value = "********"
        t.add_row(st.env, str(value), str(st.default), st.help)
    console.print(t)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations."""
    from safeguard.store import Database

    s = settings()
    Database(s.resolved_database_url).migrate(s)
    console.print(f"database at {s.resolved_database_url} is up to date")


@policy_app.command("check")
def policy_check(
    path: Annotated[Path | None, typer.Argument(help="policy file (default: the configured one)")] = None,
) -> None:
    """Validate a policy file and print its rules."""
    from safeguard.policy import load_policy

    p = load_policy(path or (settings().policy_file or None))
    t = Table("rule", "when", "verdict", "actions", title=f"policy {p.version}")
    for r in p.rules:
        t.add_row(
            r.name,
            json.dumps(r.when.model_dump(exclude_none=True)),
            r.verdict.value,
            ", ".join(a.name for a in r.actions),
        )
    console.print(t)
