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
import json
import os
import re
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
from safeguard.ledger import Signer
from safeguard.reports.gather import gather
from safeguard.reports.service import record
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
            "linked_accounts": [
                {"platform": la.platform, "user_id": la.user_id, "screen_name": la.screen_name} for la in u.linked
            ],
        },
        "content": [],
        "conversation": {"id": data.conversation_id, "transcript": "files/transcript.txt"} if data.chat else None,
        "subject": {"kind": c.subject_kind, "id": c.subject_id} if c is not None else None,
    }
    return doc, plans


def _item(ref: str, what: str, status: str, note: str) -> dict[str, str]:
    return {"schedule": ref, "item": what, "status": status, "note": note}


def coverage(doc: dict[str, Any]) -> list[dict[str, str]]:
    """Each item of the regulations' Schedule (CSEA information to be included in reports) against this
    package: ``included``, ``partial``, ``not_given`` (the platform did not send it for this report) or
    ``missing`` (Safeguard never holds it: the person submitting adds it). docs/reporting.md has the list."""
    rep, acc, content = doc["reporter"], doc["account"], doc["content"]
    files = [c for c in content if c.get("file")]
    out = [
        _item(
            "1",
            "the authorised person submitting the report (name, contact details)",
            "included" if rep["contact"] and rep["email"] else "not_given",
            "SAFEGUARD_REPORTER_CONTACT, _EMAIL, _PHONE; the NCA account's own details are the portal's",
        ),
        _item(
            "2",
            "the content: a copy, its hash values, location, date and time of upload and detection",
            "included" if files else "not_given",
            "files/, content[].hashes (SHA-256, MD5, PDQ), content[].location, uploaded_at, first_detected_at",
        ),
        _item(
            "2",
            "EXIF data of images and videos",
            "included" if any(c.get("exif") for c in files) else "not_given",
            "content[].exif, read from the vault copy (empty when the file carries none)",
        ),
        _item(
            "3",
            "what the submitting person knows of the incident (type, category, conversation)",
            "included",
            "incident.type, incident.category, incident.annotations; conversation transcript for chat cases",
        ),
        _item(
            "4",
            "the user: account identifiers (user id, screen name, display name, email, creation time)",
            "included" if acc["screen_name"] or acc["email"] or acc["display_name"] else "partial",
            "account.*: the user id always; the rest as the platform sent them (the `user` object)",
        ),
        _item(
            "4",
            "IP addresses with port numbers and times",
            "included" if acc["ip_addresses"] else "not_given",
            "account.ip_addresses (the `user` object's ip and port, at the decision's time)",
        ),
        _item(
            "4",
            "connections with other accounts",
            "included" if acc["linked_accounts"] else "not_given",
            "account.linked_accounts (the `user` object's linked_accounts)",
        ),
        _item("5", "identity documents the provider holds for the user", "missing", "Safeguard holds none"),
        _item(
            "6",
            "other information reasonably available (e.g. date of birth, location, payment details)",
            "missing",
            "not carried by Safeguard; the person submitting adds it",
        ),
        _item(
            "7",
            "a declaration that all information reasonably available has been included",
            "missing",
            "made by the authorised person when submitting; the package's signature is not that declaration",
        ),
        _item("reg. 14", "priority assessment (urgency)", "missing", "set by the person submitting"),
    ]
    return out


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
    doc["regulations"] = coverage(doc)
    files["report.json"] = json.dumps(doc, indent=2, sort_keys=True).encode()
    return signer.signed_zip(files)


def record_made(s: Session, report_id: int, blob: bytes, *, actor: str, via: str, sealed: bool) -> None:
    """The NCA referral made: a ``report.nca_packaged`` event, in the caller's write transaction, after the
    package was written (a crash between the two leaves a package uncounted, never a count without one).
    The transparency report counts these (docs/transparency.md); ``sha256`` names the file handed over."""
    r = s.get(Report, report_id)
    if r is None:
        return
    record(
        s,
        r,
        "report.nca_packaged",
        actor,
        case_id=r.case_id,
        sha256=hashlib.sha256(blob).hexdigest(),
        bytes=len(blob),
        sealed=sealed,
        via=via,
    )


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
