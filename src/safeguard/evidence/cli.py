"""``safeguard vault``: make and rotate the master key, verify, purge and hold evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from safeguard.config import Settings
from safeguard.errors import InvalidInput
from safeguard.evidence.vault import EvidenceVault
from safeguard.terminal import cli_actor, make_console

app = typer.Typer(help="The evidence vault: its key, verification, retention and legal holds.", no_args_is_help=True)
console = make_console()
err = make_console(stderr=True)


def _vault() -> EvidenceVault:
    from safeguard.store import Database

    s = Settings.from_env()
    db = Database(s.resolved_database_url)
    db.migrate()
    return EvidenceVault(s, db)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


@app.command("init")
def init(
    key_file: Annotated[
        Path | None,
        typer.Option(help="where to write the key (default: SAFEGUARD_VAULT_KEY_FILE, else DATA_DIR/vault.key)"),
    ] = None,
) -> None:
    """Make a new master key (32 random bytes, mode 0600). Never overwrites an existing key file."""
    from safeguard.evidence import MasterKey

    s = Settings.from_env()
    path = key_file or (Path(s.vault_key_file) if s.vault_key_file else Path(s.data_dir) / "vault.key")
    key = MasterKey.generate().write_new(path)
    console.print(f"vault key {key.id} written to {path} (mode 0600)")
    console.print(f"  export SAFEGUARD_VAULT_KEY_FILE={path.resolve()}")
    console.print("  keep a copy offline; without it the vault's evidence cannot be read (docs/vault.md)")


@app.command("rotate-key")
def rotate_key(
    new_key_file: Annotated[Path, typer.Option(help="the new key file; made here if it does not exist")],
    old_key_file: Annotated[
        list[Path] | None,
        typer.Option(help="key(s) the items are wrapped with now (default: SAFEGUARD_VAULT_KEY_FILE)"),
    ] = None,
) -> None:
    """Re-wrap every item's data key under a new master key. The old key file is left in place: point
    SAFEGUARD_VAULT_KEY_FILE at the new one, restart, run this again to catch items preserved meanwhile,
    then `safeguard vault verify`, then destroy the old key."""
    from safeguard.evidence import MasterKey

    vault = _vault()
    olds = [MasterKey.load(p) for p in old_key_file] if old_key_file else [vault.key]
    if new_key_file.exists():
        new = MasterKey.load(new_key_file)
        console.print(f"using the existing new key {new.id} at {new_key_file}")
    else:
        new = MasterKey.generate().write_new(new_key_file)
        console.print(f"new vault key {new.id} written to {new_key_file} (mode 0600)")
    olds = [k for k in olds if k.id != new.id]
    with _progress() as bar:
        task = bar.add_task("re-wrapping", total=vault.count())
        done, failures = vault.rotate(new, olds, actor=cli_actor(), on_item=lambda: bar.advance(task))
    console.print(f"re-wrapped {done} data keys from {[k.id for k in olds]} to {new.id}")
    for f in failures:
        err.print(f"[red]{f['code']}[/] {f['item_id']}: {f['message']}")
    console.print(f"next: SAFEGUARD_VAULT_KEY_FILE={new_key_file.resolve()}, restart, run this again, then verify")
    if failures:
        raise typer.Exit(1)


@app.command("verify")
def verify() -> None:
    """Decrypt and re-hash every item and check it against its preservation event; exit 1 on any failure."""
    vault = _vault()
    with _progress() as bar:
        task = bar.add_task("verifying", total=vault.count())
        report = vault.verify(actor=cli_actor(), on_item=lambda: bar.advance(task))
    t = Table("items", "ok", "failed", "no bytes (hash-only, purged)", "files no row names")
    t.add_row(str(report.checked), str(report.ok), str(len(report.failures)), str(report.skipped), str(report.orphans))
    console.print(t)
    if report.failures:
        ft = Table("item", "error", "message")
        for f in report.failures:
            ft.add_row(f["item_id"], f["code"], f["message"])
        err.print(ft)
        raise typer.Exit(1)
    console.print(f"[green]vault intact[/]: {report.ok} items decrypted and matched their SHA-256")


@app.command("purge")
def purge(dry_run: Annotated[bool, typer.Option(help="list what is due, delete nothing")] = False) -> None:
    """Delete items past their retention and not on legal hold (shred the data key, remove the file)."""
    vault = _vault()
    due = vault.due()
    if dry_run:
        t = Table("item", "case", "sha256", "retain until")
        for i in due:
            t.add_row(i.id, str(i.case_id or ""), i.sha256 or "", i.retain_until.isoformat(timespec="seconds"))
        console.print(t)
        console.print(f"{len(due)} items due")
        return
    with _progress() as bar:
        task = bar.add_task("purging", total=len(due))
        purged = vault.purge(actor=cli_actor(), on_item=lambda: bar.advance(task))
    console.print(f"purged {len(purged)} items (data keys erased, files removed)")


def _hold(item: list[str] | None, case: int | None, hold: bool, reason: str) -> None:
    vault = _vault()
    ids = list(item or [])
    if case is not None:
        ids += [i.id for i in vault.items_for_case(case)]
    if not ids:
        raise InvalidInput("name items (--item) or a case (--case) with evidence", code="evidence_not_found")
    n = vault.set_hold(ids, hold=hold, actor=cli_actor(), reason=reason)
    console.print(f"legal hold {'placed on' if hold else 'released from'} {n} items")


@app.command("hold")
def hold(
    reason: Annotated[str, typer.Option(help="why (recorded in the event log)")],
    item: Annotated[list[str] | None, typer.Option(help="an item id (repeatable)")] = None,
    case: Annotated[int | None, typer.Option(help="every item of this case")] = None,
) -> None:
    """Place a legal hold: held items are never purged."""
    _hold(item, case, True, reason)


@app.command("release")
def release(
    reason: Annotated[str, typer.Option(help="why (recorded in the event log)")],
    item: Annotated[list[str] | None, typer.Option(help="an item id (repeatable)")] = None,
    case: Annotated[int | None, typer.Option(help="every item of this case")] = None,
) -> None:
    """Release a legal hold."""
    _hold(item, case, False, reason)


@app.command("list")
def list_items(case: Annotated[int, typer.Option(help="the case")]) -> None:
    """A case's evidence items (metadata only)."""
    t = Table("item", "status", "sha256", "size", "media type", "retain until", "hold")
    for i in _vault().items_for_case(case):
        t.add_row(
            i.id,
            i.status,
            (i.sha256 or "")[:16],
            str(i.size or ""),
            i.media_type or "",
            i.retain_until.date().isoformat(),
            "yes" if i.legal_hold else "",
        )
    console.print(t)
