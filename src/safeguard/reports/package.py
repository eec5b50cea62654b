"""The UK NCA package: a report as the regulations ask for it, with its evidence, signed, optionally
encrypted to the recipient. The NCA's channel is not a public API: this is a file an operator hands over.

A package is a zip file::

    report.json        the required contents (docs/reporting.md lists them)
    files/<name>       the evidence files, decrypted from the vault (in memory, never on disk in the clear
                       until the recipient unpacks it)
    manifest.sha256    one "<sha256>  <path>" line per file above (``sha256sum -c`` reads it)
    manifest.sig       Ed25519 signature over manifest.sha256 (the ledger's signing key)
    signer.pem         that key's public half

It verifies without Safeguard: ``unzip``, ``sha256sum -c manifest.sha256``, and ``openssl pkeyutl -verify
-pubin -inkey signer.pem -rawin -in manifest.sha256 -sigfile manifest.sig`` (docs/reporting.md). With a
recipient's X25519 public key the zip is sealed: ``SGNCA1`` + ephemeral public key (32 bytes) + nonce
(12) + AES-256-GCM ciphertext, the key from HKDF-SHA256 over the X25519 shared secret.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session

from safeguard.config import Settings
from safeguard.errors import InvalidInput
from safeguard.evidence.vault import EvidenceVault
from safeguard.ledger import Signer, public_key_pem
from safeguard.reports.gather import gather
from safeguard.reports.submitter import exif_of
from safeguard.store.models import Case, Report

FORMAT = "safeguard-nca-package/1"
MAGIC = b"SGNCA1"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat() if t is not None else None


def contents(s: Session, r: Report, settings: Settings) -> tuple[dict[str, Any], list[Any]]:
    data, plans = gather(s, r, settings)
    c = s.get(Case, r.case_id)
    u = data.user
    doc: dict[str, Any] = {
        "format": FORMAT,
        "report_id": r.id,
        "case_id": r.case_id,
        "reporter": {
            "organisation": data.reporter.organisation,
            "contact": data.reporter.contact,
            "email": data.reporter.email,
            "phone": data.reporter.phone,
        },
        "incident": {
            "type": data.incident_type,
            "category": r.category,
            "first_detected_at": _iso(data.incident_at),
            "confirmed_at": _iso(r.confirmed_at),
            "confirmed_by": r.confirmed_by,
            "approved_by": r.approved_by,
            "annotations": list(data.annotations),
        },
        "account": {
            "user_id": u.user_id,
            "screen_name": u.screen_name,
            "display_name": u.display_name,
            "email": u.email,
            "account_created_at": _iso(u.account_created_at),
            "ip_addresses": [{"ip": e.ip, "port": e.port, "at": _iso(e.at), "event": e.event} for e in u.ips],
            "linked_accounts": [],
        },
        "content": [],
        "conversation": {"id": data.conversation_id, "transcript": "files/transcript.txt"} if data.chat else None,
        "subject": {"kind": c.subject_kind, "id": c.subject_id} if c is not None else None,
    }
    return doc, plans


def build(
    db_session: Session, r: Report, settings: Settings, vault: EvidenceVault, signer: Signer, *, actor: str
) -> bytes:
    """The signed zip for report ``r`` (each vault read an audited event)."""
    doc, plans = contents(db_session, r, settings)
    data, _ = gather(db_session, r, settings)
    files: dict[str, bytes] = {}
    for p in plans:
        if not p.has_bytes:
            doc["content"].append({"item_id": p.key, "file": None, "hashes": p.hashes, "note": "no bytes kept"})
            continue
        if p.key == "transcript":
            blob = data.transcript.encode()
        else:
            _, blob = vault.read(p.key, actor=actor, reason=f"NCA package for report {r.id}", case_id=r.case_id)
        name = f"files/{_SAFE.sub('_', p.key)}-{_SAFE.sub('_', p.file_name)}"
        files[name] = blob
        doc["content"].append(
            {
                "item_id": p.key,
                "file": name,
                "file_name": p.file_name,
                "uploaded_at": _iso(p.uploaded_at),
                "location": "uploaded to the platform (private upload)",
                "hashes": dict(p.hashes, sha256=hashlib.sha256(blob).hexdigest()),
                "exif": exif_of(blob) if p.key != "transcript" else {},
            }
        )
    files["report.json"] = json.dumps(doc, indent=2, sort_keys=True).encode()
    manifest = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in sorted(files.items())).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, blob in sorted(files.items()):
            z.writestr(name, blob)
        z.writestr("manifest.sha256", manifest)
        z.writestr("manifest.sig", signer.sign_bytes(manifest))
        z.writestr("signer.pem", public_key_pem(signer.public))
    return buf.getvalue()


def load_recipient(data: bytes) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data.strip())
    except ValueError as exc:
        raise InvalidInput(f"not a PEM public key: {exc}", code="invalid_public_key") from exc
    if not isinstance(key, X25519PublicKey):
        raise InvalidInput("the recipient key must be an X25519 public key (PEM)", code="invalid_public_key")
    return key


def _key(shared: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=FORMAT.encode()).derive(shared)


def seal(package: bytes, recipient: X25519PublicKey) -> bytes:
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    nonce = os.urandom(12)
    ct = AESGCM(_key(eph.exchange(recipient))).encrypt(nonce, package, MAGIC + eph_pub)
    return MAGIC + eph_pub + nonce + ct


def unseal(blob: bytes, private: X25519PrivateKey) -> bytes:
    """The recipient's side (docs/reporting.md shows the same in a few lines of Python)."""
    if not blob.startswith(MAGIC):
        raise InvalidInput("not a sealed NCA package", code="invalid_package")
    eph_pub, nonce, ct = blob[6:38], blob[38:50], blob[50:]
    shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    return AESGCM(_key(shared)).decrypt(nonce, ct, MAGIC + eph_pub)
