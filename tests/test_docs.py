"""Docs stay honest: every setting, CLI command and error code the code has is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import typer.main

from safeguard.cli import app
from safeguard.config import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
DOCS = "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


@pytest.mark.parametrize("env", [s.env for s in SETTINGS])
def test_every_setting_is_documented(env: str) -> None:
    assert f"`{env}`" in (ROOT / "docs" / "operators.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "safeguard") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, f"{prefix} {name}"))
        else:
            out.append(f"{prefix} {name}")
    return out


@pytest.mark.parametrize("command", _commands(typer.main.get_command(app)))  # type: ignore[arg-type]
def test_every_cli_command_is_documented(command: str) -> None:
    assert command in DOCS, f"{command!r} is not mentioned in README.md or docs/"


def test_every_error_code_raised_is_documented() -> None:
    src = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src" / "safeguard").rglob("*.py"))
    codes = set(re.findall(r'code="([a-z_]+)"', src)) | set(re.findall(r'^\s+code = "([a-z_]+)"', src, re.M))
    codes -= {
        "error",
        "config_error",
        "invalid_setting",
        "invalid_policy",
        "invalid_row",
        "missing_field",
        "bad_header",
        "wrong_column_count",
        "unknown_source",
        "unknown_detector",
        "unknown_action",
        "key_not_found",
        "invalid_role",
        # key files, sealed secrets and checkpoint files: CLI and configuration, documented in security.md
        "invalid_secrets_key",
        "secret_unreadable",
        "invalid_signing_key",
        "invalid_public_key",
        "invalid_checkpoint",
    }  # CLI- and import-report codes, documented in operators.md
    integrators = (ROOT / "docs" / "integrators.md").read_text(encoding="utf-8")
    missing = sorted(c for c in codes if f"`{c}`" not in integrators)
    assert not missing, f"error codes missing from docs/integrators.md: {missing}"
