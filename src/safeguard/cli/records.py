"""The records: the event log (``events``), webhook endpoints (``webhooks``) and sealed secrets (``secrets``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safeguard.cli.apps import events_app, secrets_app, webhooks_app
from safeguard.cli.common import actor, console, engine, err, settings
from safeguard.errors import SafeguardError


# -- events and webhooks ------------------------------------------------------------------------
@events_app.command("verify")
def events_verify(
    checkpoint: Annotated[
        list[Path] | None, typer.Option(help="a checkpoint file kept elsewhere (events checkpoint --out); repeatable")
    ] = None,
    public_key: Annotated[
        list[Path] | None,
        typer.Option(help="trusted signing public key (PEM); repeatable. Default: the signing key file's own"),
    ] = None,
    stored: Annotated[bool, typer.Option(help="also check the checkpoints stored in the database")] = True,
) -> None:
    """Check the hash chain, the chain against every checkpoint, and every decision row against its event;
    exit 1 if anything was edited, inserted or removed."""
    from safeguard import ledger

    s = settings()
    checkpoints = [cp for path in checkpoint or [] for cp in ledger.load_checkpoints(path)]
    if public_key:
        trusted = [ledger.load_public_key(p.read_bytes()) for p in public_key]
    elif ledger.signing_key_path(s).exists():
        trusted = [ledger.Signer.from_settings(s).public]
    else:
        trusted = []
    with engine().db.read() as sess:
        r = ledger.verify(sess, checkpoints=checkpoints, trusted=trusted, stored=stored)
    c = r.chain
    if c.ok:
        console.print(f"[green]event chain intact[/]: {c.checked} events verified")
    else:
        err.print(f"[red]event chain broken at seq {c.first_bad_seq}[/]: {c.problem} ({c.checked} events verified)")
    console.print(
        f"checkpoints: {r.checkpoints_checked} matched against the chain; decisions: {r.decisions_checked} checked"
        f" ({r.decisions_by_fields} recorded before row digests, checked field by field;"
        f" {r.decisions_without_event} pending or failed without an event)"
    )
    for p in r.problems:
        err.print(f"[red]problem[/] {p}")
    if r.more_problems:
        err.print(f"[red]... and {r.more_problems} more problems[/]")
    if not r.ok:
        raise typer.Exit(1)


@events_app.command("checkpoint")
def events_checkpoint(
    out: Annotated[Path | None, typer.Option(help="also write the signed checkpoint (JSON) to this file")] = None,
) -> None:
    """Sign the event log's head now, store the checkpoint, and print it (keep a copy elsewhere)."""
    from safeguard import ledger

    cp = ledger.checkpoint(engine().db, ledger.Signer.from_settings(settings()))
    text = json.dumps(cp.to_dict(), indent=2) + "\n"
    if out is not None:
        out.write_text(text, encoding="utf-8")
        err.print(f"checkpoint at seq {cp.seq} written to {out}")
    print(text, end="")


@events_app.command("export-public-key")
def events_export_public_key(
    out: Annotated[Path | None, typer.Option(help="write the PEM to this file instead of printing it")] = None,
) -> None:
    """Print the public half of the checkpoint signing key (PEM), for `events verify --public-key`."""
    from safeguard import ledger

    signer = ledger.Signer.from_settings(settings())
    pem = ledger.public_key_pem(signer.public).decode()
    if out is not None:
        out.write_text(pem, encoding="utf-8")
        err.print(f"public key {signer.key_id} written to {out}")
    else:
        print(pem, end="")


@events_app.command("list")
def events_list(after: int = 0, limit: int = 50, type: str | None = None) -> None:
    """List events."""
    from sqlalchemy import select

    from safeguard.store.models import Event

    q = select(Event).where(Event.seq > after).order_by(Event.seq).limit(limit)
    if type:
        q = q.where(Event.type == type)
    t = Table("seq", "time", "type", "actor", "subject", "hash")
    with engine().db.read() as s:
        for ev in s.execute(q).scalars():
            t.add_row(
                str(ev.seq),
                ev.created_at.isoformat(timespec="seconds"),
                ev.type,
                ev.actor,
                f"{ev.subject_kind}:{ev.subject_id}" if ev.subject_kind else "",
                ev.hash[:16],
            )
    console.print(t)


@webhooks_app.command("add")
def webhooks_add(
    url: str,
    secret: Annotated[str | None, typer.Option(help="default: generated")] = None,
    event: Annotated[list[str] | None, typer.Option(help="topics to send (default: all)")] = None,
) -> None:
    """Add a webhook endpoint; prints its signing secret once (stored sealed)."""
    import secrets as _secrets

    from safeguard.webhook_store import add_endpoint

    e = engine()
    secret = secret or _secrets.token_urlsafe(32)
    try:
        with e.db.write() as s:
            endpoint_id = add_endpoint(
                s, e.settings, url=url, secret=secret, topics=list(event or []), actor=actor()
            ).id
    except SafeguardError as exc:  # e.g. egress_refused: the URL is checked now and at every delivery
        err.print(f"[red]error[/red] {exc.code}: {exc.message}")
        raise typer.Exit(2) from None
    err.print(f"webhook {endpoint_id} added for {url}; signing secret (shown once):")
    print(secret)


@webhooks_app.command("remove")
def webhooks_remove(webhook_id: int) -> None:
    """Disable a webhook endpoint and cancel its pending deliveries."""
    from safeguard.webhook_store import remove_endpoint

    with engine().db.write() as s:
        n = remove_endpoint(s, webhook_id, actor=actor())
    console.print(f"webhook {webhook_id} removed; {n} pending deliveries cancelled")


@webhooks_app.command("list")
def webhooks_list() -> None:
    """List webhook endpoints and delivery counts."""
    from sqlalchemy import func, select

    from safeguard.store.models import OutboxMessage, WebhookEndpoint

    with engine().db.read() as s:
        t = Table("id", "url", "events", "enabled")
        for w in s.execute(select(WebhookEndpoint)).scalars():
            t.add_row(str(w.id), w.url, ",".join(w.events) or "all", str(w.enabled))
        console.print(t)
        counts = dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    console.print(
        f"outbox: {counts.get('pending', 0)} pending, {counts.get('delivered', 0)} delivered, "
        f"{counts.get('dead', 0)} dead, {counts.get('cancelled', 0)} cancelled"
    )


@secrets_app.command("seal")
def secrets_seal(
    purpose: Annotated[
        str,
        typer.Option(
            help="what the secret is for: ncmec for SAFEGUARD_NCMEC_PASSWORD, exchange-credentials for a bank pull's"
            " --keys-file, --token-file or --credentials-file"
        ),
    ] = "ncmec",
) -> None:
    """Seal a secret read from standard input (never an argument: shells keep history); prints the sealed value."""

    from safeguard import secrets as _sealed

    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        err.print("nothing on standard input")
        raise typer.Exit(1)
    typer.echo(_sealed.seal(settings(), value, purpose=purpose))


@secrets_app.command("migrate")
def secrets_migrate() -> None:
    """Seal secrets stored in the clear by earlier versions (the service also does this when it starts)."""
    from safeguard.webhook_store import seal_plaintext_secrets

    e = engine()
    with e.db.write() as s:
        n = seal_plaintext_secrets(s, e.settings, actor=actor())
    console.print(f"{n} webhook secrets sealed")
