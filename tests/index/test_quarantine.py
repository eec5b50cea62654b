"""Defence in depth: a bank row the index cannot load (a bad value written by an older version or
straight into the database) is quarantined, with an event and a metric; scans and start-up go on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from safeguard.api import create_app
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine
from safeguard.index.mih import MIHIndex
from safeguard.keys import KeyService
from safeguard.store import Database
from safeguard.store.models import BankEntry, EntryChange, Event
from tests.helpers.api import auth
from tests.helpers.net import free_port

GOOD = "f0" * 32
BAD_ROWS = [
    ("pdq", "\u0660" * 64),  # the red team's value: int(v, 16) took it, bytes.fromhex does not
    ("pdq", "0x" + "a" * 62),
    ("pdq", "AB" * 32),  # not canonical (upper case)
    ("vpdq", "g" * 64),
    ("md5", "\u0660" * 32),
    ("sha256", "ab" * 16),  # wrong length
]


def write_bad_rows(db: Database, bank_id: int) -> list[int]:
    """Insert rows as an older version (or a hand-edited database) might have, past every check."""
    ids = []
    with db.write() as s:
        for t, v in BAD_ROWS:
            ids.append(
                s.execute(
                    insert(BankEntry)
                    .values(
                        bank_id=bank_id, signal_type=t, value=v, enabled=True, provenance={}, source="", added_by="old"
                    )
                    .returning(BankEntry.id)
                ).scalar_one()
            )
    return ids


def hash_scan(engine: Engine, value: str) -> str:
    d = engine.scan(Content(kind=ContentKind.HASHES, signals=(Signal("pdq", value, 100),)))
    return d.verdict.value


def quarantine_events(db: Database) -> list[Event]:
    with db.read() as s:
        return list(s.execute(select(Event).where(Event.type == "index.entry_quarantined")).scalars())


def test_bad_rows_at_start_are_quarantined_once(settings: Settings) -> None:
    first = Engine(settings)
    banks = BankService(first.db)
    bank = banks.create("b", actor="t")
    banks.add_entry("b", signal_type="pdq", value=GOOD, actor="t")
    bad_ids = write_bad_rows(first.db, bank.id)
    first.close()

    # two processes start on the same database (as `serve --workers 2` does): neither fails
    a, b = Engine(settings), Engine(settings)
    try:
        for e in (a, b):
            assert e.indexes.sizes()["pdq"] == 1
            assert set(bad_ids) <= set(e.indexes.quarantined) or e is b
            assert hash_scan(e, GOOD) == "block"
            assert hash_scan(e, "00" * 32) == "allow"
        events = quarantine_events(a.db)
        assert sorted(int(ev.subject_id or 0) for ev in events) == bad_ids  # one event per row, not per process
        assert {ev.payload["bank"] for ev in events} == {"b"}
        assert all(ev.payload["reason"] and ev.payload["value"] for ev in events)
        with a.db.read() as s:
            enabled = dict(s.execute(select(BankEntry.id, BankEntry.enabled)).all())
        assert [enabled[i] for i in bad_ids] == [False] * len(bad_ids)
        # a third start finds them disabled: no new events
        c = Engine(settings)
        c.close()
        assert len(quarantine_events(a.db)) == len(bad_ids)
    finally:
        a.close()
        b.close()


def test_bad_row_added_while_running_is_quarantined_on_refresh(engine: Engine, banks: BankService) -> None:
    bank = banks.create("b", actor="t")
    banks.add_entry("b", signal_type="pdq", value=GOOD, actor="t")
    assert hash_scan(engine, GOOD) == "block"
    [bad] = write_bad_rows(engine.db, bank.id)[:1]
    with engine.db.write() as s:
        s.add(EntryChange(bank_id=bank.id, entry_id=bad, last_entry_id=bad, op="range"))
    assert hash_scan(engine, GOOD) == "block"  # the refresh that met the bad row did not fail the scan
    assert bad in engine.indexes.quarantined
    assert [int(ev.subject_id or 0) for ev in quarantine_events(engine.db)] == [bad]


def test_a_row_the_index_refuses_for_another_reason_is_quarantined(
    engine: Engine, banks: BankService, monkeypatch: pytest.MonkeyPatch
) -> None:
    banks.create("b", actor="t")
    refused = "0e" * 32
    add = MIHIndex.add

    def picky(self: MIHIndex, ids: list[int], values: list[str]) -> None:
        if refused in values:
            raise RuntimeError("this index cannot take that value")
        add(self, ids, values)

    monkeypatch.setattr(MIHIndex, "add", picky)
    good = banks.add_entry("b", signal_type="pdq", value=GOOD, actor="t")
    bad = banks.add_entry("b", signal_type="pdq", value=refused, actor="t")
    # both arrive in one refresh batch; the batch fails, row by row the good one is added
    assert hash_scan(engine, GOOD) == "block"
    assert bad.id in engine.indexes.quarantined and good.id not in engine.indexes.quarantined
    assert "refused" in engine.indexes.quarantined[bad.id].reason


def test_metric_and_api_after_quarantine(
    settings: Settings, engine: Engine, banks: BankService, keys: dict[str, str]
) -> None:
    bank = banks.create("b", actor="t")
    banks.add_entry("b", signal_type="pdq", value=GOOD, actor="t")
    write_bad_rows(engine.db, bank.id)
    fresh = Engine(settings)  # starts with the bad rows in the database
    try:
        with TestClient(create_app(settings, engine=fresh)) as c:
            r = c.post("/v1/scan", headers=auth(keys["platform"]), json={"signals": [{"type": "pdq", "value": GOOD}]})
            assert r.status_code == 200 and r.json()["verdict"] == "block"
            text = c.get("/metrics").text
            assert 'safeguard_index_quarantined_entries{signal_type="pdq"} 3.0' in text
            assert 'safeguard_index_quarantined_entries{signal_type="md5"} 1.0' in text
            listed = c.get("/v1/banks/b/entries", headers=auth(keys["moderator"])).json()["entries"]
            assert [e["enabled"] for e in listed] == [True] + [False] * len(BAD_ROWS)
    finally:
        fresh.close()


def test_serve_starts_and_scans_with_a_bad_row_in_the_database(tmp_path: Path, db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    banks = BankService(db)
    bank = banks.create("b", actor="t")
    banks.add_entry("b", signal_type="pdq", value=GOOD, actor="t")
    write_bad_rows(db, bank.id)
    key = KeyService(db).create("platform", "t", actor="t")["key"]
    port = free_port()
    env = {
        **os.environ,
        "SAFEGUARD_DATA_DIR": str(tmp_path / "data"),
        "SAFEGUARD_DATABASE_URL": db_url,
        "SAFEGUARD_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "safeguard.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        r = httpx.post(
            url + "/v1/scan", headers=auth(key), json={"signals": [{"type": "pdq", "value": GOOD}]}, timeout=10
        )
        assert r.status_code == 200 and r.json()["verdict"] == "block", r.text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        db.dispose()
    assert b"quarantined" in err  # the log says which rows and why
    assert len(quarantine_events(Database(db_url))) == len(BAD_ROWS)


def test_backfill_skips_rows_the_index_cannot_load(engine: Engine, banks: BankService) -> None:
    from safeguard.gpu.backfill import load_pdq_entries

    bank = banks.create("b", actor="t")
    good = banks.add_entry("b", signal_type="pdq", value=GOOD, actor="t")
    write_bad_rows(engine.db, bank.id)  # bypasses the engine: nothing quarantined them yet
    entries = load_pdq_entries(engine.db, ["b"], 31)
    assert entries.entry_ids.tolist() == [good.id] and entries.words.shape == (1, 4)
