"""``safeguard evidence export CASE --out FILE``: a case's evidence for investigators, verifiable without
Safeguard.

The zip holds ``case.json`` (the case and its items with their hashes), ``files/`` (the preserved bytes,
each read an audited vault event), ``custody.json`` (every event touching the case, its decisions, items
and reports, with ``prev_hash`` and ``hash``), ``chain.json`` (the hash-chain proof: ``seq``, ``prev_hash``,
``hash`` of every event from the first custody event to the log's head, so each custody event's place
in the one chain can be checked), and ``manifest.sha256`` signed as ``manifest.sig`` with the ledger's
Ed25519 key (``signer.pem``). ``scripts/verify_custody.py`` (standard library only) recomputes every
custody event's hash and every link; ``sha256sum -c`` and ``openssl pkeyutl -verify`` check the rest
(docs/reporting.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import and_, or_, select

from safeguard.evidence.vault import EvidenceVault, case_items
from safeguard.ledger import Signer
from safeguard.store import Database
from safeguard.store.models import Case, CaseItem, Event, Report

FORMAT = "safeguard-evidence-export/1"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _event(e: Event) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "created_at": e.created_at.isoformat(),
        "type": e.type,
        "actor": e.actor,
        "subject_kind": e.subject_kind,
        "subject_id": e.subject_id,
        "payload": e.payload,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


def export_case(db: Database, vault: EvidenceVault, signer: Signer, case_id: int, *, actor: str) -> bytes:
    from safeguard.errors import NotFound

    with db.read() as s:
        c = s.get(Case, case_id)
        if c is None:
            raise NotFound(f"case {case_id} not found", code="case_not_found")
        items = case_items(s, case_id)
        decision_ids = list(s.execute(select(CaseItem.decision_id).where(CaseItem.case_id == case_id)).scalars())
        report_ids = [str(i) for i in s.execute(select(Report.id).where(Report.case_id == case_id)).scalars()]
        conds = [and_(Event.subject_kind == "case", Event.subject_id == str(case_id))]
        for kind, ids in (("decision", decision_ids), ("evidence", [i.id for i in items]), ("report", report_ids)):
            if ids:
                conds.append(and_(Event.subject_kind == kind, Event.subject_id.in_(ids)))
        custody = [_event(e) for e in s.execute(select(Event).where(or_(*conds)).order_by(Event.seq)).scalars()]
        first = custody[0]["seq"] if custody else 0
        chain = [
            {"seq": seq, "prev_hash": prev, "hash": h}
            for seq, prev, h in s.execute(
                select(Event.seq, Event.prev_hash, Event.hash).where(Event.seq >= first).order_by(Event.seq)
            )
        ]
        case_doc = {
            "format": FORMAT,
            "case": {
                "id": c.id,
                "subject": {"kind": c.subject_kind, "id": c.subject_id},
                "queue": c.queue,
                "outcome": c.outcome,
                "category": c.category,
                "decided_by": c.decided_by,
                "decided_at": c.decided_at.isoformat() if c.decided_at else None,
                "opened_at": c.opened_at.isoformat(),
            },
            "items": [i.to_dict() for i in items],
            "reports": report_ids,
        }
    files: dict[str, bytes] = {}
    for it in items:
        if it.has_bytes:
            _, data = vault.read(it.id, actor=actor, reason=f"evidence export of case {case_id}", case_id=case_id)
            files[f"files/{_SAFE.sub('_', it.id)}-{_SAFE.sub('_', it.file_name or 'item')}"] = data
    files["case.json"] = json.dumps(case_doc, indent=2, sort_keys=True).encode()
    files["custody.json"] = json.dumps(custody, indent=1, sort_keys=True, ensure_ascii=False).encode()
    files["chain.json"] = json.dumps(chain).encode()
    return signer.signed_zip(files)
