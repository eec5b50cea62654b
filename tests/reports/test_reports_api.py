"""/v1/reports and ``safeguard reports``: list with state and cursor, show with steps and XML, approve, retract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from safeguard.accounts import UserService
from safeguard.banks import BankService
from safeguard.cli import app as cli_app
from safeguard.config import Settings
from safeguard.engine import Engine
from tests.helpers.api import auth
from tests.helpers.reports import REPORTER, confirmed_case


def test_api_lists_shows_approves_and_retracts(
    app_client: TestClient, keys: dict[str, str], engine: Engine, banks: BankService
) -> None:
    confirmed_case(engine, banks)
    admin, aud = auth(keys["admin"]), auth(keys["auditor"])
    got = app_client.get("/v1/reports?state=draft", headers=aud).json()
    assert len(got["reports"]) == 1 and got["next_cursor"] is None
    rid = got["reports"][0]["id"]
    one = app_client.get(f"/v1/reports/{rid}", headers=aud).json()
    assert one["state"] == "draft" and [s["type"] for s in one["steps"]] == ["report.drafted"]
    assert one["preview"]["validation"] == [] and one["preview"]["xml"].startswith("<?xml")
    assert app_client.post(f"/v1/reports/{rid}/approve", headers=aud).status_code == 403  # an auditor reads only
    assert app_client.post(f"/v1/reports/{rid}/approve", headers=admin).json()["state"] == "approved"
    r = app_client.post(f"/v1/reports/{rid}/retract", headers=admin, json={"reason": "test"})
    assert r.json()["state"] == "retracted"
    again = app_client.post(f"/v1/reports/{rid}/retract", headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "report_state"
    assert app_client.get("/v1/reports/999", headers=aud).json()["error"]["code"] == "report_not_found"
    assert app_client.get("/v1/reports?state=bogus", headers=aud).status_code == 422
    assert app_client.get("/v1/reports?cursor=zzz", headers=aud).json()["error"]["code"] == "invalid_cursor"


def test_cli_lists_shows_exports_and_approves_as_a_named_lead(
    settings: Settings, engine: Engine, banks: BankService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    confirmed_case(engine, banks)
    UserService(engine.db, engine.settings).create("lena", "lead", actor="t")
    monkeypatch.setenv("SAFEGUARD_DATA_DIR", settings.data_dir)
    monkeypatch.setenv("SAFEGUARD_DATABASE_URL", settings.resolved_database_url)
    for k, v in REPORTER.items():
        monkeypatch.setenv(f"SAFEGUARD_{k.upper()}", v)
    run = CliRunner().invoke
    listed = run(cli_app, ["reports", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rid = json.loads(listed.output.splitlines()[0])["id"]
    shown = json.loads(run(cli_app, ["reports", "show", str(rid)]).output)
    assert shown["preview"]["missing"] == []
    out = tmp_path / "r.xml"
    assert run(cli_app, ["reports", "export", str(rid), "--out", str(out)]).exit_code == 0
    assert out.read_text().startswith("<?xml") and "<espIdentifier>u-1</espIdentifier>" in out.read_text()
    nobody = run(cli_app, ["reports", "approve", str(rid), "--as", "nobody"])
    assert nobody.exit_code == 1 and "user_not_found" in nobody.output
    ok = run(cli_app, ["reports", "approve", str(rid), "--as", "lena"])
    assert ok.exit_code == 0 and "approved by user:lena" in ok.output
