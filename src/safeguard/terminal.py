"""Rich consoles for the command line that never cut what they print.

Rich wraps at 80 columns when its output is not a terminal (a pipe, a file, a CI log), which broke
hashes and paths in half (``safeguard hash`` printed ``ba09ab50073ab…``). Here a console writing
to a terminal uses the terminal's width, one writing anywhere else is as wide as its longest line,
and ``COLUMNS`` still decides when it is set.
"""

from __future__ import annotations

import getpass
import os
import sys

from rich.console import Console

#: the width of a console that does not write to a terminal: rich tables take only the width they need
UNBOUNDED = 100_000


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width: int | None = None
    if not os.environ.get("COLUMNS") and not _isatty(stream):
        width = UNBOUNDED
    return Console(stderr=stderr, width=width)


def cli_actor() -> str:
    """Who a command run from a shell acts as, in events: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


__all__ = ["UNBOUNDED", "cli_actor", "make_console"]
