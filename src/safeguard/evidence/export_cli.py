"""``safeguard evidence export``: a case's evidence and chain of custody for investigators."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from safeguard.config import Settings
from safeguard.errors import SafeguardError
from safeguard.terminal import make_console

app = typer.Typer(help="Evidence for investigators: export a case with its chain of custody.", no_args_is_help=True)
console = make_console()
err = make_console(stderr=True)


@app.command("export")
def export(case: int, out: Annotated[Path, typer.Option("--out", help="the zip file to write")]) -> None:
    """Write the case's items, their hashes, the chain of custody with its hash-chain proof, signed (Ed25519)."""
    from safeguard.evidence.export import export_case
    from safeguard.evidence.vault import EvidenceVault
    from safeguard.ledger import Signer
    from safeguard.store import Database

    s = Settings.from_env()
    db = Database(s.resolved_database_url)
    db.migrate()
    try:
        vault = EvidenceVault(s, db)
        vault.start()
        blob = export_case(db, vault, Signer.from_settings(s), case, actor="cli")
    except SafeguardError as exc:
        err.print(f"[red]{exc.code}[/red]: {exc}")
        raise typer.Exit(1) from None
    out.write_bytes(blob)
    console.print(f"case {case} exported to {out}; verify with scripts/verify_custody.py (docs/reporting.md)")
