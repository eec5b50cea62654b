"""NCMEC hash sharing as a bank source, through python-threatexchange's NCMEC exchange and client,
against a loopback server in the XML shapes of NCMEC's v2 API (tests/helpers/ncmec_hash.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.errors import InvalidInput, SafeguardError
from tests.helpers.cli import point_cli_at
from tests.helpers.ncmec_hash import PASSWORD, REASONS, USER, iso, ncmec_server

pytest.importorskip("threatexchange", reason="the exchanges extra (python-threatexchange) is not installed")

from threatexchange.exchanges.impl import ncmec_api

from safeguard.banks.sources.pytx import NCMECSource, pull

T0 = 1_700_000_000


def pdq(i: int) -> str:
    return hashlib.sha256(f"ncmec-pdq-{i}".encode()).hexdigest()


def md5(i: int) -> str:
    return f"{i:032x}"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """pytx's NCMEC fetch ends its windows at "now - 5 s": a fixed clock makes the windows repeatable."""
    now = SimpleNamespace(t=T0 + 1000)
    monkeypatch.setattr(ncmec_api, "time", SimpleNamespace(time=lambda: now.t))
    return now


def enabled(banks: BankService, bank: str) -> dict[str, dict[str, object]]:
    return {e.value: e for e in banks.list_entries(bank, limit=1000) if e.enabled}


def source(url: str, settings: Settings, **kw: object) -> NCMECSource:
    return NCMECSource(url, settings, username=USER, password=PASSWORD, **kw)  # type: ignore[arg-type]


def test_first_pull_incremental_pull_and_deletion(
    banks: BankService, settings: Settings, clock: SimpleNamespace, tmp_path: Path
) -> None:
    banks.create("ncmec", actor="t", kind="csam")
    cp = tmp_path / "ncmec.checkpoint"
    with ncmec_server() as nc:
        nc.entry("e1", T0 + 100, pdq=pdq(1), md5=md5(1), sha1="a" * 40, pdna="x" * 20)
        nc.entry("e2", T0 + 100, pdq=pdq(2))
        nc.entry("e3", T0 + 100, pdq=pdq(3))
        nc.entry("v1", T0 + 200, kind="video", md5=md5(9))
        nc.entry("e4", T0 + 300, member=8, pdq="not-a-pdq-hash")
        res = pull(banks, "ncmec", source(nc.url, settings), cp, actor="test")
        got = enabled(banks, "ncmec")
        # image pdq and md5, video md5; sha1 and pdna are not Safeguard signals and are left out
        assert set(got) == {pdq(1), md5(1), pdq(2), pdq(3), md5(9)}
        assert res.added_or_updated == 5 and [r.code for r in res.rejected] == ["invalid_signal"]
        assert res.batches >= 3  # the window with e1-e3 is paged (2 entries a page) by paging/next
        assert any("start" in q for q in nc.requests)
        e1 = got[pdq(1)]
        assert e1.source == "ncmec" and e1.category == "A1"
        assert e1.provenance["ncmec"] == {
            "entry": "7-e1",
            "id": "e1",
            "member": 7,
            "type": "image",
            "fingerprint": "PDQ",
        }
        assert got[md5(9)].provenance["ncmec"]["type"] == "video"
        first = json.loads(cp.read_text())
        assert first == {"get_entries_max_ts": T0 + 1000 - 5, "paging_info": None}  # a finished fetch

        # later: one entry deleted by its member, one new; the pull starts from the checkpoint
        clock.t = T0 + 2000
        nc.requests.clear()
        nc.entry("e2", T0 + 1500, deleted=True)
        nc.entry("e5", T0 + 1600, pdq=pdq(5))
        res = pull(banks, "ncmec", source(nc.url, settings), cp, actor="test")
        assert nc.requests[0]["from"] == iso(T0 + 995)
        assert res.deleted == 1 and res.added_or_updated == 1
        assert set(enabled(banks, "ncmec")) == {pdq(1), md5(1), pdq(3), md5(9), pdq(5)}
        assert json.loads(cp.read_text())["get_entries_max_ts"] == T0 + 1995


def test_a_malformed_page_leaves_the_checkpoint_and_applies_nothing_of_it(
    banks: BankService, settings: Settings, clock: SimpleNamespace, tmp_path: Path
) -> None:
    banks.create("ncmec", actor="t", kind="csam")
    cp = tmp_path / "ncmec.checkpoint"
    with ncmec_server() as nc:
        nc.page_size = 1
        for i in range(1, 4):
            nc.entry(f"e{i}", T0 + 100, pdq=pdq(i))
        # find how many requests a whole pull makes, on a scratch bank
        banks.create("scratch", actor="t", kind="csam")
        pull(banks, "scratch", source(nc.url, settings), None, actor="test")
        second_page = next(i for i, q in enumerate(nc.requests) if "start" in q)  # the window's paging/next
        nc.requests.clear()
        nc.malformed_after = second_page  # that page is broken
        with pytest.raises(SafeguardError) as e:
            pull(banks, "ncmec", source(nc.url, settings), cp, actor="test")
        assert e.value.code == "source_failed" and e.value.status == 502
        applied = set(enabled(banks, "ncmec"))
        assert len(applied) == 1  # the window's first page, with its checkpoint; none of the broken one
        saved = json.loads(cp.read_text())
        assert saved["paging_info"] is not None  # mid-window: resumes from the paging URL it reached
        # the server is mended: the pull resumes mid-window and ends where a whole pull ends
        nc.malformed_after = None
        nc.requests.clear()
        pull(banks, "ncmec", source(nc.url, settings), cp, actor="test")
        assert "start" in nc.requests[0]  # resumed from the saved paging URL, not from the start
        assert set(enabled(banks, "ncmec")) == {pdq(1), pdq(2), pdq(3)}
        assert json.loads(cp.read_text()) == {"get_entries_max_ts": T0 + 995, "paging_info": None}

        # broken from the first page: nothing applied, the checkpoint file not even written
        banks.create("other", actor="t", kind="csam")
        other_cp = tmp_path / "other.checkpoint"
        nc.malformed_after = 0
        with pytest.raises(SafeguardError):
            pull(banks, "other", source(nc.url, settings), other_cp, actor="test")
        assert banks.list_entries("other") == [] and not other_cp.exists()


def test_wrong_credentials_bad_urls_and_checkpoints(banks: BankService, settings: Settings) -> None:
    banks.create("ncmec", actor="t", kind="csam")
    with ncmec_server() as nc:
        bad = NCMECSource(nc.url, settings, username=USER, password="wrong")
        with pytest.raises(SafeguardError) as e:
            pull(banks, "ncmec", bad, None, actor="test")
        assert e.value.code == "source_failed" and "401" in e.value.message
    with pytest.raises(InvalidInput) as bad_url:
        source("http://ncmec.example/hashsharing", settings)  # http only to loopback
    assert bad_url.value.code == "invalid_source"
    with pytest.raises(InvalidInput):
        NCMECSource("https://ncmec.example", settings, username=USER, password="")
    with pytest.raises(InvalidInput) as bad_cp:
        from safeguard.banks.sources.base import Checkpoint

        next(source("http://127.0.0.1:9", settings).fetch_iter(Checkpoint('{"paging_info": {"x": 1}}')))
    assert bad_cp.value.code == "invalid_checkpoint"


def test_bank_pull_ncmec_from_the_command_line(
    banks: BankService, settings: Settings, clock: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from safeguard.cli import app

    banks.create("ncmec", actor="t", kind="csam")
    point_cli_at(monkeypatch, settings)
    creds = tmp_path / "ncmec.credentials"
    creds.write_text(f"{USER}:{PASSWORD}\n")
    cp = tmp_path / "ncmec.checkpoint"
    with ncmec_server() as nc:
        nc.entry("e1", T0 + 100, pdq=pdq(1))
        nc.entry("e2", T0 + 100, member=8, pdq=pdq(2))
        args = ["bank", "pull", "ncmec", "--ncmec", nc.url, "--credentials-file", str(creds), "--member", "7"]
        got = CliRunner().invoke(app, [*args, "--checkpoint-file", str(cp)])
        assert got.exit_code == 0, got.output
        assert "1 added or updated, 0 deleted, 0 rejected" in got.output
    assert set(enabled(banks, "ncmec")) == {pdq(1)}  # member 8's entry is not followed
    assert json.loads(cp.read_text())["get_entries_max_ts"] == T0 + 995

    # the credentials file may hold them sealed (AES-256-GCM under SAFEGUARD_SECRETS_KEY_FILE)
    runner = CliRunner()
    sealed = runner.invoke(app, ["secrets", "seal", "--purpose", "exchange-credentials"], input=f"{USER}:{PASSWORD}\n")
    assert sealed.exit_code == 0 and sealed.output.startswith("sgs1."), sealed.output
    creds.write_text(sealed.output)
    assert PASSWORD not in creds.read_text()
    clock.t = T0 + 2000
    with ncmec_server() as nc:
        nc.entry("e3", T0 + 1500, pdq=pdq(3))
        args = ["bank", "pull", "ncmec", "--ncmec", nc.url, "--credentials-file", str(creds)]
        got = runner.invoke(app, [*args, "--checkpoint-file", str(cp)])
        assert got.exit_code == 0 and "1 added or updated" in got.output, got.output
        # sealed for another purpose: refused before anything is sent
        other = runner.invoke(app, ["secrets", "seal", "--purpose", "ncmec"], input=f"{USER}:{PASSWORD}\n")
        creds.write_text(other.output)
        nc.requests.clear()
        got = runner.invoke(app, args)
        assert isinstance(got.exception, SafeguardError) and got.exception.code == "secret_unreadable"
        assert nc.requests == []


def test_opinions_go_back_to_ncmec_as_feedback_on_the_fingerprint(
    engine: Engine, banks: BankService, settings: Settings, clock: SimpleNamespace
) -> None:
    from sqlalchemy import select

    from safeguard.exchange.pytx_opinions import send_opinions
    from safeguard.store.models import ExchangeOpinionOut

    banks.create("ncmec", actor="t", kind="csam")
    with ncmec_server() as nc:
        nc.entry("e1", T0 + 100, pdq=pdq(1), md5=md5(1))
        nc.entry("v1", T0 + 200, kind="video", member=9, md5=md5(9))
        src = source(nc.url, settings)
        pull(banks, "ncmec", src, None, actor="test")
        ids = {e.value: e.id for e in banks.list_entries("ncmec")}
        banks.add_opinion(ids[pdq(1)], "confirmed", actor="mod:a")
        banks.add_opinion(ids[md5(9)], "disputed", actor="mod:a")
        nc.fail_feedback = True
        got = send_opinions(engine.db, "ncmec", src, actor="test")
        assert got.sent == 0 and got.error is not None and got.error.code == "source_failed"
        nc.fail_feedback = False
        got = send_opinions(engine.db, "ncmec", src, actor="test")
        assert got.sent == 2 and got.error is None
        # an upvote on e1's PDQ; a downvote on v1's MD5 with the one reason NCMEC lists for MD5
        assert nc.feedback == [
            {"member": 7, "id": "e1", "fingerprint": "PDQ", "vote": "affirmative", "reasons": []},
            {"member": 9, "id": "v1", "fingerprint": "MD5", "vote": "negative", "reasons": list(REASONS)},
        ]
    with engine.db.read() as s:
        rows = s.execute(select(ExchangeOpinionOut.status, ExchangeOpinionOut.attempts)).all()
    assert sorted(rows) == [("sent", 2), ("sent", 2)]
