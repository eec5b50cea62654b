"""The ``safeguard`` command line. Every command works on the configured database directly and calls the
same engine and services as the HTTP API.

Commands live by group in this package (``service``, ``access``, ``banks``, ``scanning``, ``records``),
registered on the groups of ``apps``; plug-ins add theirs through the ``safeguard.commands`` entry points.
What commands share (consoles, settings, the engine) is in ``common``, re-exported here for plug-ins.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points

import typer
from rich.markup import escape

from safeguard.cli.apps import app
from safeguard.cli.common import actor, console, emit_json, engine, err, progress, settings, warn_if_new_database
from safeguard.errors import SafeguardError

# the command modules register their commands as they are imported, in the order --help lists them
for _module in ("service", "scanning", "access", "banks", "records"):
    importlib.import_module(f"safeguard.cli.{_module}")

__all__ = [
    "actor",
    "app",
    "console",
    "emit_json",
    "engine",
    "err",
    "main",
    "progress",
    "settings",
    "warn_if_new_database",
]


def _mount_plugins() -> None:
    """Commands that plug in through the ``safeguard.commands`` entry points, Safeguard's own as an outside
    package's would: a ``typer.Typer`` becomes a command group named after its entry point, a function
    a command. The modules are imported here but keep their heavy imports (torch) inside the command."""
    for ep in sorted(entry_points(group="safeguard.commands"), key=lambda e: e.name):
        target = ep.load()
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=ep.name)
        else:
            app.command(ep.name)(target)


_mount_plugins()


def main() -> None:
    try:
        app()
    except SafeguardError as exc:
        err.print(f"[red]error[/] {exc.code}: {escape(exc.message)}")  # "pip install 'safeguard[x]'" is not markup
        sys.exit(2)
