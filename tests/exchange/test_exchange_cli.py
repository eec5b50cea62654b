"""``safeguard keys create --role partner --banks`` and ``safeguard exchange add|list|sync|remove``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safeguard.cli import app
from tests.exchange.conftest import Instance, auth

runner = CliRunner()


def use(monkeypatch: pytest.MonkeyPatch, inst: Instance) -> None:
    monkeypatch.setenv("SAFEGUARD_DATA_DIR", inst.settings.data_dir)
    monkeypatch.setenv("SAFEGUARD_DATABASE_URL", inst.settings.database_url)
    monkeypatch.setenv("SAFEGUARD_EGRESS_ALLOW", "127.0.0.1")
    monkeypatch.setenv("COLUMNS", "250")


def run(*args: str, code: int = 0) -> str:
    r = runner.invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r.output


def test_share_and_follow_from_the_command_line(
    publisher: Instance, subscriber: Instance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use(monkeypatch, publisher)
    run("bank", "create", "shared")
    with pytest.raises(Exception) as exc:  # not shareable yet
        runner.invoke(app, ["keys", "create", "--role", "partner", "--banks", "shared"], catch_exceptions=False)
    assert getattr(exc.value, "code", "") == "bank_not_shareable"
    assert "partner" not in run("keys", "list")  # no key was made for a refused share
    run("bank", "set", "shared", "--shareable")
    assert "--banks is for partner keys" in run("keys", "create", "--role", "platform", "--banks", "shared", code=2)
    out = run("keys", "create", "--role", "partner", "--name", "b", "--banks", "shared")
    key = next(line for line in out.splitlines() if line.startswith("sg_"))
    assert "shared with it: shared" in out
    assert any("partner" in line and line.rstrip(" │").endswith("shared") for line in run("keys", "list").splitlines())
    run("events", "export-public-key", "--out", str(tmp_path / "a.pem"))
    with publisher.client() as c:
        r = c.post(
            "/v1/banks/shared/entries",
            headers=auth(publisher.keys["moderator"]),
            json={"signal_type": "md5", "value": "0" * 32},
        )
        assert r.status_code == 201

    use(monkeypatch, subscriber)
    run("bank", "create", "from-a")
    url = f"{publisher.url}/v1/exchange/banks/shared"
    run("exchange", "add", "a", "--url", url, "--key", key, "--bank", "from-a", "--public-key", str(tmp_path / "a.pem"))
    out = run("exchange", "sync")
    assert "a: 1 pages, 1 added or updated, 0 removed" in out
    (sub,) = [json.loads(line) for line in run("exchange", "list", "--json").splitlines() if line.startswith("{")]
    assert sub["entries_applied"] == 1 and sub["bank"] == "from-a" and sub["last_error"] is None
    assert sub["entries_held"] == 1 and sub["cursor"]
    table = run("exchange", "list")
    assert "cursor" in table and "changes applied" in table and sub["cursor"] in table
    assert key not in json.dumps(sub)  # the partner key is stored sealed and never shown
    # a subscription pinned to another key: sync fails, says why, exits 1
    run("bank", "create", "from-a-2")
    run(
        "exchange",
        "add",
        "a2",
        "--url",
        url,
        "--key",
        key,
        "--bank",
        "from-a-2",
        "--public-key",
        str(tmp_path / "a.pem"),
    )
    publisher.app.state.services.keys.revoke(key.split("_")[1], actor="test")
    out = run("exchange", "sync", "a2", code=1)
    assert "exchange_partner_unauthorized" in out and "checkpoint unchanged" in out
    run("exchange", "remove", "a")
    run("exchange", "remove", "a2")
    assert run("exchange", "list", "--json").strip() == ""
