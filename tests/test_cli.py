"""The CLI end to end against a temporary database."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safeguard.cli import app
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from tests.media_factory import encode, image_bytes, make_image

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Path:
    monkeypatch.setenv("SAFEGUARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SAFEGUARD_DATABASE_URL", db_url)
    monkeypatch.setenv("SAFEGUARD_INDEX_REFRESH_SECONDS", "0")
    monkeypatch.setenv("COLUMNS", "250")
    media = tmp_path / "media"
    media.mkdir()
    for i in range(3):
        (media / f"img{i}.jpg").write_bytes(image_bytes(i))
    return tmp_path


def run(*args: str) -> str:
    r = runner.invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def run_out(*args: str) -> str:
    """Standard output only (progress bars and notes go to standard error)."""
    r = runner.invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_keys(cli_env: Path) -> None:
    out = run("keys", "create", "--role", "platform", "--name", "uploads")
    key = next(line for line in out.splitlines() if line.startswith("sg_"))
    assert run_out("keys", "create", "--role", "auditor").startswith("sg_")
    listing = run("keys", "list")
    assert "uploads" in listing and key not in listing
    r = runner.invoke(app, ["keys", "create", "--role", "wizard"])
    assert r.exit_code != 0
    assert run_out("keys", "create", "--role", "platform", "--name", "acme-up", "--tenant", "acme").startswith("sg_")
    listing = run("keys", "list")
    assert "acme" in listing and "tenant" in listing
    r = runner.invoke(app, ["keys", "create", "--role", "platform", "--tenant", "Not A Tenant"])
    assert r.exit_code != 0 and getattr(r.exception, "code", None) == "invalid_tenant"


def test_bank_add_scan_export_events(cli_env: Path) -> None:
    media = cli_env / "media"
    run("bank", "create", "mods", "--category", "A1", "--threshold", "pdq=31")
    out = run("bank", "add", "mods", str(media / "img0.jpg"))
    assert "3 entries added" in out
    assert "mods" in run("bank", "list")
    # a re-encoded copy of img0 is blocked, the others allowed
    (media / "copy.png").write_bytes(encode(make_image(0).resize((200, 150)), "PNG"))
    r = runner.invoke(app, ["scan", str(media), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    decisions = {Path(d["path"]).name: d["verdict"] for d in map(json.loads, r.stdout.splitlines())}
    assert decisions == {"copy.png": "block", "img0.jpg": "block", "img1.jpg": "allow", "img2.jpg": "allow"}
    out = run("scan", str(media))
    assert "4 files scanned" in out
    exported = cli_env / "out.csv"
    run("bank", "export", "mods", "--format", "csv", "-o", str(exported))
    lines = exported.read_text().splitlines()
    assert lines[0].startswith("signal_type,value") and len(lines) == 4
    assert "event chain intact" in run("events", "verify")
    assert "decision.created" in run("events", "list", "--limit", "100")


def test_bank_import_reports_rejected_rows(cli_env: Path) -> None:
    run("bank", "create", "ncmec")
    good = hashlib.md5(b"x").hexdigest()
    path = cli_env / "list.csv"
    path.write_text(f"signal_type,value,category\nmd5,{good},A1\nmd5,nothex,A1\npdq,00,B1\n")
    r = runner.invoke(app, ["bank", "import", "ncmec", str(path), "--source", "ncmec"], catch_exceptions=False)
    assert r.exit_code == 2
    assert "1 added or updated" in r.output and "2 rejected" in r.output
    assert "3" in r.output and "4" in r.output  # line numbers of the rejected rows
    jl = cli_env / "list.jsonl"
    jl.write_text(json.dumps({"signal_type": "md5", "value": good, "delete": True}) + "\n")
    assert "1 deleted" in run("bank", "import", "ncmec", str(jl))


def test_entry_disable_and_opinion(cli_env: Path) -> None:
    run("bank", "create", "b")
    run("bank", "add", "b", str(cli_env / "media" / "img1.jpg"))
    assert "disabled" in run("bank", "disable-entry", "1", "--reason", "test")
    assert "disputed" in run("bank", "opinion", "2", "disputed", "--note", "benign")
    assert "enabled" in run("bank", "enable-entry", "1")


def test_hash_formats(cli_env: Path) -> None:
    img = cli_env / "media" / "img2.jpg"
    data = img.read_bytes()
    pdq = PDQSignal().compute(Media.from_bytes(data))[0]
    out = run_out("hash", str(img), "--format", "csv")
    assert out.splitlines()[1] == (
        f"{hashlib.sha256(data).hexdigest()},{hashlib.md5(data).hexdigest()},{pdq.value},{pdq.quality},{img}"
    )
    assert run_out("hash", str(img), "--format", "pdq").strip() == f"{pdq.value},{pdq.quality},{img}"
    assert json.loads(run_out("hash", str(img), "--format", "jsonl"))["pdq"]["value"] == pdq.value
    (cli_env / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0broken")
    r = runner.invoke(app, ["hash", str(cli_env / "bad.jpg")])
    assert r.exit_code == 1


def test_policy_check_and_settings(cli_env: Path, tmp_path: Path) -> None:
    assert "known-csam" in run("policy", "check")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - name: a\n    when: {colour: red}\n    verdict: block\n")
    r = runner.invoke(app, ["policy", "check", str(bad)])
    assert r.exit_code != 0
    assert "SAFEGUARD_MAX_UPLOAD_BYTES" in run("settings")
