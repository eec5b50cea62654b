"""Read access to decisions and the event log (cases: api/cases.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from safeguard import ledger
from safeguard.api.deps import Services, require, services
from safeguard.api.params import AfterId
from safeguard.keys import Principal
from safeguard.store.models import DecisionRow, Event

router = APIRouter(prefix="/v1", tags=["records"])


@router.get("/decisions/{decision_id}")
def get_decision(
    decision_id: str,
    svc: Services = Depends(services),
    who: Principal = Depends(require("platform", "moderator", "auditor")),
) -> dict[str, Any]:
    return svc.engine.get_decision(decision_id, tenant=who.tenant_scope)


@router.get("/decisions")
def list_decisions(
    verdict: str | None = None,
    user_id: str | None = None,
    content_id: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    svc: Services = Depends(services),
    who: Principal = Depends(require("platform", "moderator", "auditor")),
) -> dict[str, Any]:
    q = select(DecisionRow).order_by(DecisionRow.created_at.desc()).limit(limit)
    if who.tenant_scope is not None:  # a platform key sees its own tenant's decisions only
        q = q.where(DecisionRow.tenant == who.tenant_scope)
    if verdict:
        q = q.where(DecisionRow.verdict == verdict)
    if user_id:
        q = q.where(DecisionRow.user_id == user_id)
    if content_id:
        q = q.where(DecisionRow.content_id == content_id)
    with svc.engine.db.read() as s:
        return {"decisions": [dict(r.body, status=r.status) for r in s.execute(q).scalars()]}


@router.get("/events")
def list_events(
    after: AfterId = 0,
    limit: int = Query(100, ge=1, le=1000),
    type: str | None = None,
    svc: Services = Depends(services),
    _: Principal = Depends(require("auditor", admin=False)),
) -> dict[str, Any]:
    q = select(Event).where(Event.seq > after).order_by(Event.seq).limit(limit)
    if type:
        q = q.where(Event.type == type)
    with svc.engine.db.read() as s:
        rows = list(s.execute(q).scalars())
    return {
        "events": [
            {
                "seq": e.seq,
                "created_at": e.created_at.isoformat(),
                "type": e.type,
                "actor": e.actor,
                "subject": {"kind": e.subject_kind, "id": e.subject_id} if e.subject_kind else None,
                "payload": e.payload,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in rows
        ],
        "next_after": rows[-1].seq if len(rows) == limit else None,
    }


@router.get("/events/verify")
def verify_events(
    svc: Services = Depends(services), _: Principal = Depends(require("auditor", admin=False))
) -> dict[str, Any]:
    """The chain, the chain against the stored checkpoints (signatures checked with the service's own
    signing key), and every decision row against its event (safeguard/ledger.py). Checkpoints kept
    elsewhere are checked by ``safeguard events verify --checkpoint FILE``."""
    settings = svc.engine.settings
    trusted = [ledger.Signer.from_settings(settings).public] if ledger.signing_key_path(settings).exists() else []
    with svc.engine.db.read() as s:
        r = ledger.verify(s, trusted=trusted)
    c = r.chain
    return {
        "ok": r.ok,
        "checked": c.checked,
        "first_bad_seq": c.first_bad_seq,
        "problem": c.problem or (r.problems[0] if r.problems else ""),
        "checkpoints_checked": r.checkpoints_checked,
        "decisions_checked": r.decisions_checked,
        "problems": r.problems,
    }


@router.post("/events/checkpoint")
def sign_checkpoint(
    svc: Services = Depends(services), _: Principal = Depends(require("auditor", admin=False))
) -> dict[str, Any]:
    """Sign the log's head now and store the checkpoint; keep the answer somewhere the database's writers
    cannot reach (``safeguard events verify --checkpoint FILE`` checks against it)."""
    cp = ledger.checkpoint(svc.engine.db, ledger.Signer.from_settings(svc.engine.settings))
    return cp.to_dict()


@router.get("/events/public-key")
def signing_public_key(
    svc: Services = Depends(services), _: Principal = Depends(require("auditor", admin=False))
) -> dict[str, Any]:
    """The public half of the checkpoint signing key (PEM), to verify checkpoints anywhere."""
    signer = ledger.Signer.from_settings(svc.engine.settings)
    return {"key_id": signer.key_id, "public_key_pem": ledger.public_key_pem(signer.public).decode()}
