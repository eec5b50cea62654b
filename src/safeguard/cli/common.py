"""What every command uses: the consoles, the settings, the engine and services on the configured database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from safeguard.config import Settings
from safeguard.terminal import cli_actor, make_console

if TYPE_CHECKING:
    from safeguard.banks import BankService

console = make_console()
err = make_console(stderr=True)


actor = cli_actor


def settings() -> Settings:
    return Settings.from_env()


def engine(load_indexes: bool = False, start_actions: bool = False) -> Any:
    """The engine on the configured database; ``start_actions`` for commands that decide (serve, scan), so that
    record-keeping commands (keys, banks, events) do not need the evidence vault's key."""
    from safeguard.engine import Engine

    s = settings()
    warn_if_new_database(s)
    if start_actions:
        from safeguard.evidence import require_key

        require_key(s)  # the service never makes its own vault key (``safeguard vault init`` does)
    return Engine(s, load_indexes=load_indexes, start_actions=start_actions)


def warn_if_new_database(s: Settings) -> None:
    """Say so when a command is about to create a new SQLite database.

    The default data directory ``./var`` is relative to where a command runs: ``safeguard keys
    create`` run from another directory used to make a new, empty database silently, and its key
    then failed with 401 against the running service.
    """
    if s.database_url:
        return
    path = Path(s.data_dir).resolve() / "safeguard.db"
    if not path.exists():
        err.print(
            f"[yellow]note:[/] no database at {path}: creating a new one. SAFEGUARD_DATA_DIR is "
            f"{s.data_dir!r}{' (relative to this directory)' if not Path(s.data_dir).is_absolute() else ''}; "
            "run commands where the service runs, or set it to an absolute path."
        )


def banks() -> BankService:
    from safeguard.banks import BankService

    return BankService(engine().db)


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def emit_json(obj: Any) -> None:
    console.print_json(json.dumps(obj, default=str))


def iter_files(paths: list[Path]) -> list[Path]:
    """The files named, and those under the folders named (sorted); a missing path is a usage error."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            raise typer.BadParameter(f"{p} does not exist")
    return files
