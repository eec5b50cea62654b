"""``safeguard streams watch`` (the sub-app, as the main CLI mounts it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.signals.pdq import pdq_hex
from safeguard.workers.streams_cli import app
from tests.videogen import benign_image, make_video


def test_watch_a_file_until_terminated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_DATA_DIR", str(tmp_path / "var"))
    img = benign_image(31)
    eng = Engine(Settings.from_env())
    b = BankService(eng.db)
    b.create("known", actor="t", kind="csam")
    b.add_entry("known", signal_type="pdq", value=pdq_hex(img)[0], actor="t")
    eng.close()
    path = tmp_path / "clip.mp4"
    make_video(path, seconds=2, fps=10, insert=img, insert_at=(1.0, 2.0))
    res = CliRunner().invoke(app, ["watch", str(path), "--stream-id", "cli-1", "--json"])
    assert res.exit_code == 3, res.output
    state = json.loads(res.stdout.strip().splitlines()[-1])
    assert state["status"] == "terminated" and state["stream_id"] == "cli-1"
    res = CliRunner().invoke(app, ["list"])
    assert res.exit_code == 0 and "cli-1" in res.stdout


def test_watch_a_missing_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_DATA_DIR", str(tmp_path / "var"))
    res = CliRunner().invoke(app, ["watch", str(tmp_path / "none.mp4"), "--give-up-after", "0.5", "--json"])
    assert res.exit_code == 1
    assert json.loads(res.stdout.strip().splitlines()[-1])["status"] == "failed"


def test_streams_commands_run_as_a_user_runs_them(tmp_path: Path) -> None:
    """As a subprocess, the first module imported is the CLI's: an import cycle shows here."""
    exe = Path(sys.executable).with_name("safeguard")
    env = {**os.environ, "SAFEGUARD_DATA_DIR": str(tmp_path / "var")}
    res = subprocess.run([str(exe), "streams", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
