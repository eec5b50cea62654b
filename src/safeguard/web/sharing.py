"""The console's Sharing page (``/console/sharing``, leads, admins and auditors, read-only): the partners'
feeds this instance follows (``safeguard exchange list``), the banks it shares and with whom, and each
bank's list quality as ``GET /v1/banks/{bank}/quality`` gives it (precision per source from review
outcomes, the quarantined entries). Releasing a quarantined entry stays on the Banks page (leads).
Added to the console through :data:`safeguard.web.app.extra_routers`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from safeguard.api.deps import Services
from safeguard.web.app import _page, extra_routers, guarded, render

router = APIRouter(include_in_schema=False)
SHARING_ROLES = frozenset({"lead", "admin", "auditor"})


def _sharing(svc: Services) -> dict[str, Any]:
    from safeguard.banks import BankService, quality
    from safeguard.exchange.overview import shared_banks, subscriptions

    db = svc.engine.db
    return {
        "subscriptions": subscriptions(db, svc.settings),
        "shared": shared_banks(db),
        "banks": [quality.bank_quality(db, b.name, top=1) for b in BankService(db).list_banks()],
    }


@router.get("/sharing")
@guarded
async def sharing(request: Request) -> Response:
    page = await _page(request, SHARING_ROLES)
    data = await run_in_threadpool(_sharing, request.app.state.services)
    return render(request, "sharing.html", page, **data)


extra_routers.append(router)
