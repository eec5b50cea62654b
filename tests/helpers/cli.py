"""Running the CLI in process (typer's CliRunner) against a test's database and data directory."""

from __future__ import annotations

import pytest

from safeguard.config import Settings


def point_cli_at(monkeypatch: pytest.MonkeyPatch, settings: Settings, *, egress_allow: str = "127.0.0.1") -> None:
    """The environment a CLI command reads its settings from: ``settings``' database and data directory,
    outbound connections allowed to ``egress_allow`` (the tests' loopback servers)."""
    monkeypatch.setenv("SAFEGUARD_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SAFEGUARD_DATA_DIR", settings.data_dir)
    monkeypatch.setenv("SAFEGUARD_EGRESS_ALLOW", egress_allow)
