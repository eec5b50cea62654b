"""``safeguard evidence export``: items, hashes, custody with a hash-chain proof, a signature; verified with
the documented commands and scripts/verify_custody.py (standard library only), and tampering shows."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safeguard.banks import BankService
from safeguard.cli import app as cli_app
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.evidence.vault import key_path
from tests.helpers.reports import confirmed_case
from tests.reports.verify import check_manifest, run, verify_signature

VERIFY = Path(__file__).parents[2] / "scripts" / "verify_custody.py"


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("sha256sum")), reason="needs openssl, sha256sum")
def test_export_verifies_without_safeguard_and_tampering_shows(
    settings: Settings, engine: Engine, banks: BankService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = confirmed_case(engine, banks)
    monkeypatch.setenv("SAFEGUARD_DATA_DIR", settings.data_dir)
    monkeypatch.setenv("SAFEGUARD_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("SAFEGUARD_VAULT_KEY_FILE", str(key_path(settings)))  # the engine's, not the session's
    out = tmp_path / "case.zip"
    got = CliRunner().invoke(cli_app, ["evidence", "export", str(case_id), "--out", str(out)])
    assert got.exit_code == 0, got.output
    d = tmp_path / "x"
    with zipfile.ZipFile(out) as z:
        z.extractall(d)
    case = json.loads((d / "case.json").read_text())
    assert case["case"]["id"] == case_id and len(case["items"]) == 1 and case["items"][0]["sha256"]
    custody = json.loads((d / "custody.json").read_text())
    types = {e["type"] for e in custody}
    assert {"decision.created", "case.decided", "report.drafted"} <= types
    assert check_manifest(d).returncode == 0
    sig = verify_signature(d)
    assert sig.returncode == 0, sig.stderr
    ok = run(d, sys.executable, str(VERIFY), ".")
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stdout
    custody[0]["actor"] = "someone-else"  # an edited event no longer matches its hash
    (d / "custody.json").write_text(json.dumps(custody))
    bad = run(d, sys.executable, str(VERIFY), ".")
    assert bad.returncode == 1 and "does not match" in bad.stdout
