"""The gpu extra stays optional: the CLI starts without importing torch, and a missing torch is a clear
error. These run with and without torch installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from safeguard.errors import ConfigError
from safeguard.gpu.device import require_torch, resolve_device


def test_cli_import_does_not_import_torch() -> None:
    code = "import sys, safeguard.cli, safeguard.gpu.backfill; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_torch_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ConfigError, match=r"safeguard\[gpu\]"):
        require_torch()
    with pytest.raises(ConfigError):
        resolve_device("auto")


def test_backfill_without_torch_exits_with_the_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from safeguard.cli import app

    monkeypatch.setitem(sys.modules, "torch", None)
    r = CliRunner().invoke(app, ["backfill", str(tmp_path)])
    assert r.exit_code == 2
    assert "safeguard[gpu]" in r.output
