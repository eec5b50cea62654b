"""The UK NCA package: the required contents, the evidence, a SHA-256 manifest signed with Ed25519, verified
with the documented commands (sha256sum, openssl) — no Safeguard — and optionally encrypted."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.evidence.vault import EvidenceVault
from safeguard.ledger import Signer
from safeguard.reports import ReportService, package
from safeguard.reports.transports import NcaTransport, NcmecTransport, ReportTransport, transports
from safeguard.store.models import Report
from tests.helpers.reports import LEAD2, REPORTER, confirmed_case
from tests.reports.verify import check_manifest, verify_signature


def built(engine: Engine, banks: BankService) -> tuple[bytes, Settings]:
    confirmed_case(engine, banks)
    s = engine.settings.with_(**REPORTER)
    rid = ReportService(engine.db, s).list_reports(LEAD2)[0][0].id
    with engine.db.read() as db:
        r = db.get(Report, rid)
        assert r is not None
        return package.build(db, r, s, EvidenceVault(s, engine.db), Signer.from_settings(s), actor="t"), s


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("sha256sum")), reason="needs openssl, sha256sum")
def test_package_verifies_with_the_documented_commands(engine: Engine, banks: BankService, tmp_path: Path) -> None:
    blob, _ = built(engine, banks)
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        z.extractall(tmp_path)
        names = set(z.namelist())
    assert {"report.json", "manifest.sha256", "manifest.sig", "signer.pem"} <= names
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["account"]["user_id"] == "u-1" and doc["incident"]["category"] == "A1"
    assert doc["reporter"]["organisation"] == "Example Platform"
    [item] = doc["content"]
    assert (tmp_path / item["file"]).is_file() and len(item["hashes"]["sha256"]) == 64
    assert check_manifest(tmp_path).returncode == 0
    ok = verify_signature(tmp_path)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / item["file"]).write_bytes(b"swapped")  # a changed file fails the manifest
    assert check_manifest(tmp_path).returncode != 0
    (tmp_path / "manifest.sha256").write_text("0" * 64 + "  report.json\n")  # a changed manifest fails the signature
    bad = verify_signature(tmp_path)
    assert bad.returncode != 0


def test_package_encrypted_to_a_recipient_opens_only_with_its_key(engine: Engine, banks: BankService) -> None:
    blob, _ = built(engine, banks)
    priv = X25519PrivateKey.generate()
    pem = priv.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    sealed = package.seal(blob, package.load_recipient(pem))
    assert sealed.startswith(b"SGNCA1") and blob not in sealed
    assert package.unseal(sealed, priv) == blob
    with pytest.raises(InvalidTag):
        package.unseal(sealed, X25519PrivateKey.generate())


def test_transports_are_entry_points_of_one_protocol() -> None:
    got = transports()
    assert got["ncmec"] is NcmecTransport and got["nca"] is NcaTransport
    assert all(hasattr(t, "send") and isinstance(t.name, str) for t in got.values())
    assert ReportTransport  # the protocol both implement (runtime-checkable)
