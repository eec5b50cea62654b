"""The vault's spool: a preserved upload is sealed and written while its decision commits, and named by its
hash afterwards. What was answered must survive the process being killed at any point after the answer;
what failed must say so. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safeguard.api import create_app
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Verdict
from safeguard.engine import Engine
from safeguard.evidence import FileBlobStore, MasterKey, vault_of
from safeguard.evidence import vault as vault_module
from safeguard.evidence.vault import EvidenceWriteFailed, new_item_id
from safeguard.keys import KeyService
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from safeguard.store.models import Event
from safeguard.store.models import EvidenceItem as EvidenceRow
from tests.helpers.api import auth
from tests.media_factory import image_bytes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def spool_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test images are small; the spool takes uploads of SPOOL_ABOVE bytes and more."""
    monkeypatch.setattr(vault_module, "SPOOL_ABOVE", 0)


@pytest.fixture
def vsettings(settings: Settings, tmp_path: Path) -> Settings:
    MasterKey.generate().write_new(tmp_path / "keys" / "vault.key")
    return settings.with_(vault_key_file=str(tmp_path / "keys" / "vault.key"))


@pytest.fixture
def banked(vsettings: Settings) -> Iterator[bytes]:
    data = image_bytes(11, "PNG")
    e = Engine(vsettings)
    BankService(e.db).create("csam", actor="t", default_category="A1")
    pdq = PDQSignal().compute(Media.from_bytes(data))[0]
    BankService(e.db).add_entry("csam", signal_type="pdq", value=pdq.value, actor="t")
    e.close()
    yield data


def store_of(settings: Settings) -> FileBlobStore:
    return FileBlobStore(Path(settings.data_dir) / "vault" / "items")


def only_row(engine: Engine) -> EvidenceRow:
    with engine.db.read() as s:
        [row] = s.execute(select(EvidenceRow)).scalars()
        return row


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from safeguard.config import Settings
    from safeguard.content import Content, ContentKind
    from safeguard.engine import Engine
    from safeguard.evidence import vault, vault_of
    vault.SPOOL_ABOVE = 0  # a small test image: spooled as a large upload is
    data_dir, db_url, key_file, image = sys.argv[1:5]
    e = Engine(Settings(data_dir=data_dir, database_url=db_url, vault_key_file=key_file, run_worker=False,
                        index_refresh_seconds=0.0))
    e.indexes.maybe_refresh()
    vault_of(e).settler.add = lambda item_id: None  # the settler never gets to it before the kill
    d = e.scan(Content(kind=ContentKind.IMAGE, data=open(image, "rb").read(), user_id="killed"))
    print(d.id, d.verdict.value, flush=True)  # the platform has its answer ...
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies at once
    """
)


def test_an_answered_upload_survives_a_kill_before_its_file_is_named(
    vsettings: Settings, banked: bytes, tmp_path: Path
) -> None:
    image = tmp_path / "upload.png"
    image.write_bytes(banked)
    db_url = vsettings.resolved_database_url
    r = subprocess.run(
        [sys.executable, "-c", CHILD, vsettings.data_dir, db_url, vsettings.vault_key_file, str(image)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert r.returncode == -9, r.stderr
    decision_id, verdict = r.stdout.split()
    assert verdict == "block"
    store = store_of(vsettings)
    # killed after answering: the row committed, the sealed file is in the spool, not yet named by its hash
    [spooled] = store.spooled()
    e = Engine(vsettings.with_(policy_file=str(_no_rules(tmp_path))))  # a reader only: no recovery yet
    try:
        row = only_row(e)
        assert (row.decision_id, row.status, row.blob, row.id) == (decision_id, "preserved", None, spooled.name)
        # readable even now, from the spool
        _, data = vault_of(e).read(row.id, actor="t", reason="checking the spool")
        assert data == banked
    finally:
        e.close()
    # the next start settles it: the file gets its address, the row records it, the spool is empty
    e = Engine(vsettings)
    try:
        row = only_row(e)
        assert row.blob is not None and store.path(row.blob).exists() and store.spooled() == []
        assert hashlib.sha256(store.path(row.blob).read_bytes()).hexdigest() == row.blob
        _, data = vault_of(e).read(row.id, actor="t", reason="after the restart")
        assert data == banked
        report = vault_of(e).verify(actor="t")
        assert (report.ok, report.failures, report.orphans) == (1, [], 0)
    finally:
        e.close()


def _no_rules(tmp_path: Path) -> Path:
    p = tmp_path / "no-rules.yaml"
    p.write_text("version: x\nrules: []\n")
    return p


def test_items_are_settled_after_the_commit_and_readable_throughout(vsettings: Settings, banked: bytes) -> None:
    e = Engine(vsettings)
    try:
        e.indexes.maybe_refresh()
        d = e.scan(Content(kind=ContentKind.IMAGE, data=banked, user_id="u1"))
        assert d.verdict is Verdict.BLOCK
        vault = vault_of(e)
        item_id = only_row(e).id
        _, data = vault.read(item_id, actor="t", reason="at once")  # spooled or settled: either way readable
        assert data == banked
        vault.settler.flush()
        row = only_row(e)
        assert row.blob is not None and store_of(vsettings).spooled() == []
        assert vault.settle([item_id]) == 0  # settling again is harmless
        assert vault.read(item_id, actor="t", reason="settled")[1] == banked
    finally:
        e.close()


def test_a_failed_write_is_a_clear_error_and_the_row_and_log_say_so(
    vsettings: Settings, banked: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: FileBlobStore, item_id: str, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FileBlobStore, "spool", full)
    e = Engine(vsettings)
    try:
        e.indexes.maybe_refresh()
        with pytest.raises(EvidenceWriteFailed, match="No space left"):
            e.scan(Content(kind=ContentKind.IMAGE, data=banked, user_id="u2"))
        row = only_row(e)
        assert (row.status, row.wrapped_key) == ("lost", None) and "No space left" in row.note
        with e.db.read() as s:
            [ev] = s.execute(select(Event).where(Event.type == "evidence.write_failed")).scalars()
        assert ev.subject_id == row.id
        # over HTTP: a 503 with its code, never a 500
        key = KeyService(e.db).create("platform", "p", actor="t")["key"]
        with TestClient(create_app(vsettings, engine=e)) as c:
            files = {"file": ("u.png", banked, "image/png")}
            resp = c.post("/v1/scan", headers=auth(key), files=files, data={"user_id": "u3"})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "evidence_write_failed"
    finally:
        e.close()


def test_a_write_that_did_not_commit_leaves_no_file(
    vsettings: Settings, banked: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safeguard.actions.webhook import NotifyWebhook

    def broken(*args: object, **kwargs: object) -> dict[str, object]:  # runs after preserve's row
        raise RuntimeError("the webhook could not be queued")

    monkeypatch.setattr(NotifyWebhook, "run", broken)
    e = Engine(vsettings)
    try:
        e.indexes.maybe_refresh()
        with pytest.raises(RuntimeError, match="could not be queued"):
            e.scan(Content(kind=ContentKind.IMAGE, data=banked, user_id="u4"))
        vault = vault_of(e)
        assert vault._pool is not None
        vault._pool.shutdown(wait=True)  # the write finished; its done-callback removed the file
        with e.db.read() as s:
            assert s.execute(select(EvidenceRow)).first() is None
        assert store_of(vsettings).spooled() == [] and not list(store_of(vsettings).root.glob("*/*/*"))
    finally:
        e.close()


def test_recover_removes_only_old_files_without_a_row(vsettings: Settings, banked: bytes) -> None:
    e = Engine(vsettings)
    try:
        store = store_of(vsettings)
        old, fresh = new_item_id(), new_item_id()
        store.spool(old, b"SGV1 never committed")
        store.spool(fresh, b"SGV1 maybe committing in another process")
        hour_ago = time.time() - 3600
        os.utime(store.spool_path(old), (hour_ago, hour_ago))
        assert vault_of(e).recover() == {"settled": 0, "removed": 1}
        assert [p.name for p in store.spooled()] == [fresh]
    finally:
        e.close()


def test_small_uploads_are_sealed_before_the_commit_with_their_address(
    vsettings: Settings, banked: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vault_module, "SPOOL_ABOVE", len(banked) + 1)
    e = Engine(vsettings)
    try:
        e.indexes.maybe_refresh()
        e.scan(Content(kind=ContentKind.IMAGE, data=banked, user_id="u5"))
        row = only_row(e)  # no settling needed: the address is in the committed row
        assert (
            row.blob is not None and store_of(vsettings).path(row.blob).exists() and store_of(vsettings).spooled() == []
        )
    finally:
        e.close()
