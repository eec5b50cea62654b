"""Evidence over the API: a case's items (metadata), and one item's decrypted bytes, audited.

Opening an item needs a stated reason and the role ``moderator``, ``lead`` or ``admin``. ``auditor`` keys
audit the records (they may list a case's items and read every event, including who opened what) but
never see the media; ``platform`` keys see neither. A refused attempt is an event too
(``evidence.read_denied``), and so is every read (``evidence.read``) and failed read
(``evidence.read_failed``).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from safeguard.api.deps import Services, allowed_roles, principal, require, services
from safeguard.errors import Forbidden, NotFound
from safeguard.evidence import vault_of
from safeguard.keys import Principal
from safeguard.store.models import Case

router = APIRouter(prefix="/v1", tags=["evidence"])
READERS = allowed_roles("moderator", "lead")
ITEM_ID = re.compile(r"^ev_[0-9a-f]{32}$")


@router.get("/cases/{case_id}/evidence")
def list_evidence(
    case_id: int,
    svc: Services = Depends(services),
    _: Principal = Depends(require("moderator", "lead", "auditor")),
) -> dict[str, Any]:
    """A case's evidence items: id, SHA-256, size, media type, status (``preserved``, ``hash_only`` with the
    note "no bytes preserved: hash-only scan", ``purged``), retention and legal hold. No bytes."""
    vault = vault_of(svc.engine)
    with svc.engine.db.read() as s:
        if s.get(Case, case_id) is None:
            raise NotFound(f"case {case_id} not found", code="case_not_found")
        items = vault.items_for_case(case_id, s)
    return {"case_id": case_id, "evidence": [i.to_dict() for i in items]}


@router.get(
    "/cases/{case_id}/evidence/{item_id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the item's decrypted bytes"}},
)
async def get_evidence(
    case_id: int,
    item_id: str,
    reason: str = Query("", max_length=500, description="why you open this item (recorded in the event log)"),
    svc: Services = Depends(services),
    who: Principal = Depends(principal),
) -> Response:
    """The decrypted bytes of one item. Every call is an event with the caller and the reason."""
    if not ITEM_ID.match(item_id):
        raise NotFound(f"evidence item {item_id[:80]!r} not found in case {case_id}", code="evidence_not_found")
    vault = vault_of(svc.engine)
    if who.role not in READERS:
        await run_in_threadpool(
            vault.record,
            "evidence.read_denied",
            who.actor,
            item_id,
            {"case_id": case_id, "role": who.role, "reason": reason},
        )
        raise Forbidden(f"role {who.role!r} may not open evidence; needs one of {sorted(READERS)}", code="wrong_role")
    item, data = await run_in_threadpool(vault.read, item_id, actor=who.actor, reason=reason, case_id=case_id)
    name = f"{item.id}"
    return Response(
        content=data,
        media_type=item.media_type or "application/octet-stream",
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Evidence-SHA256": item.sha256 or "",
        },
    )
