"""``safeguard exchange``: follow partners' shared banks (``add``, ``list``, ``sync``, ``remove``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

if TYPE_CHECKING:
    from safeguard.exchange.follower import ExchangeService

app = typer.Typer(help="Partners' shared banks followed into local banks (docs/sharing.md).", no_args_is_help=True)


def _service() -> ExchangeService:
    from safeguard.cli import engine
    from safeguard.exchange.follower import ExchangeService

    e = engine()
    return ExchangeService(e.db, e.settings)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="a name for the subscription (a-z, 0-9, '_', '.', '-')")],
    url: Annotated[str, typer.Option(help="the partner's feed URL: https://HOST/v1/exchange/banks/BANK")],
    key: Annotated[str, typer.Option(help="the partner API key the partner gave you (stored sealed)")],
    bank: Annotated[str, typer.Option(help="the local bank the entries go into")],
    public_key: Annotated[
        Path | None,
        typer.Option(help="the partner's Ed25519 public key (PEM or base64); without it, fetched now and pinned"),
    ] = None,
    remote_bank: Annotated[str | None, typer.Option(help="the partner's bank, when --url is the base URL")] = None,
) -> None:
    """Subscribe to a partner's shared bank."""
    from safeguard.cli import actor, console, err

    svc = _service()
    d = svc.add(
        name,
        url=url,
        key=key,
        bank=bank,
        actor=actor(),
        public_key=public_key.read_bytes() if public_key else None,
        remote_bank=remote_bank,
    )
    if public_key is None:
        err.print(
            f"[yellow]pinned the partner's public key {d['public_key']}[/]: compare it with the one the partner "
            "gives you out of band (their `GET /v1/exchange/key`)."
        )
    console.print(f"subscription {d['name']}: {d['url']} bank {d['remote_bank']} -> local bank {d['bank']}")


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False) -> None:
    """Subscriptions: their cursors, the entries they hold, last sync and last error."""
    from safeguard.cli import console
    from safeguard.exchange.overview import subscriptions

    svc = _service()
    subs = subscriptions(svc.db, svc.settings)
    if as_json:
        for d in subs:
            print(json.dumps(d))
        return
    t = Table(
        "name",
        "partner",
        "local bank",
        "cursor",
        "entries",
        "changes applied",
        "last sync",
        "opinions pending",
        "last error",
    )
    for d in subs:
        t.add_row(
            d["name"],
            f"{d['url']} {d['remote_bank']}",
            d["bank"],
            d["cursor"] or "(start)",
            str(d["entries_held"]),
            str(d["entries_applied"]),
            d["last_sync_at"] or "never",
            str(d["opinions_pending"]),
            f"{d['last_error_code']}: {d['last_error']}" if d["last_error_code"] else "",
        )
    console.print(t)


@app.command("sync")
def sync(
    name: Annotated[str | None, typer.Argument(help="one subscription (default: all)")] = None,
) -> None:
    """Pull now: every page the partner has, then the queued opinions. Exits 1 if any failed."""
    from safeguard.cli import console, err

    svc = _service()
    names = [name] if name else [d["name"] for d in svc.subscriptions()]
    failed = False
    for n in names:
        r = svc.sync(n)
        if r.error is None:
            try:
                r.opinions_sent = svc.send_opinions(n)
            except Exception as exc:
                r.error = {"code": getattr(exc, "code", "error"), "message": str(exc)}
        if r.error:
            failed = True
            err.print(f"[red]{n}: {r.error['code']}[/]: {r.error['message']} (checkpoint unchanged)")
        console.print(
            f"{n}: {r.pages} pages, {r.upserts} added or updated, {r.removals} removed, {r.opinions_sent} opinions sent"
        )
    if failed:
        raise typer.Exit(1)


@app.command("remove")
def remove(name: str) -> None:
    """Stop following a partner (the entries already applied stay in the local bank)."""
    from safeguard.cli import actor, console

    svc = _service()
    svc.remove(name, actor=actor())
    console.print(f"subscription {name} removed")
