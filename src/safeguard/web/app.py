"""The moderator console (``/console``): server-rendered pages over the case service, the account service's
sessions and the evidence vault. No API key here: a person logs in (name, password, TOTP), gets the
``sg_session`` cookie, and every form carries the session's CSRF token. Media are rendered here with Pillow,
blurred and greyscale by default; the original bytes never reach the browser.

Other parts add their own console pages by including a router in :data:`extra_routers` before
:func:`install`, as the law-enforcement reports do (``web/reports.py``, ``templates/reports/``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safeguard.accounts import SessionInfo, UserService, Who, check_csrf, csrf_token
from safeguard.api.deps import Services
from safeguard.cases import CATEGORIES, QUEUES, STATUSES, CaseFilter, CaseService
from safeguard.errors import Forbidden, InvalidInput, SafeguardError, Unauthorized
from safeguard.evidence import vault_of
from safeguard.web.conversation import conversation_context
from safeguard.web.service import ConsoleService, render_image

HERE = Path(__file__).parent
COOKIE = "sg_session"
PREFIX = "/console"
WORK_ROLES = frozenset({"moderator", "lead", "admin"})
READ_ROLES = WORK_ROLES | {"auditor"}
REVEAL_ROLES = WORK_ROLES
LEAD_ROLES = frozenset({"lead", "admin"})
OUTCOMES = ("confirmed", "not_violating", "escalated")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)
#: routers other parts add to the console (e.g. a page per law-enforcement report); each under /console
extra_routers: list[APIRouter] = []

env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


def _ago(d: datetime | None, now: datetime) -> str:
    if d is None:
        return ""
    secs = int((now - d).total_seconds())
    sign, secs = ("", secs) if secs >= 0 else ("-", -secs)
    if secs < 3600:
        return f"{sign}{secs // 60}m"
    if secs < 86400:
        return f"{sign}{secs // 3600}h {secs % 3600 // 60}m"
    return f"{sign}{secs // 86400}d {secs % 86400 // 3600}h"


def _sla(due: datetime | None, now: datetime) -> tuple[str, str]:
    """A countdown and its state (``ok``, ``soon`` within 15 minutes, ``late``)."""
    if due is None:
        return "", "ok"
    left = (due - now).total_seconds()
    if left < 0:
        return f"overdue {_ago(due, now)}", "late"
    return f"in {_ago(now - timedelta(seconds=left), now)}", "soon" if left < 900 else "ok"


env.globals.update(ago=_ago, sla=_sla)


class SecurityHeaders:
    """Headers on every console response: CSP without inline script, no framing, no caching of pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        static = str(scope["path"]).startswith(PREFIX + "/static/")

        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if not static:
                    headers = [h for h in headers if h[0].lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with)


# -- plumbing ---------------------------------------------------------------------------------------
def _services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def _users(request: Request) -> UserService:
    return _services(request).users


def _cases(request: Request) -> CaseService:
    return _services(request).cases


def _console(request: Request) -> ConsoleService:
    c: ConsoleService = request.app.state.console
    return c


class Page:
    """The logged-in person behind a console request."""

    def __init__(self, request: Request, info: SessionInfo, token: str) -> None:
        self.request = request
        self.info = info
        self.who: Who = info.who
        self.csrf = csrf_token(token)


class _Redirect(Exception):
    def __init__(self, to: str) -> None:
        self.to = to


async def _page(request: Request, roles: frozenset[str] = READ_ROLES, *, allow_temporary: bool = False) -> Page:
    token = request.cookies.get(COOKIE)
    if not token:
        raise _Redirect(f"{PREFIX}/login")
    try:
        info = await run_in_threadpool(_users(request).session, token)
    except Unauthorized as exc:
        raise _Redirect(f"{PREFIX}/login?{urlencode({'expired': '1'})}") from exc
    if info.must_change_password and not allow_temporary:
        raise _Redirect(f"{PREFIX}/password")
    if info.who.role not in roles:
        raise Forbidden(f"role {info.who.role!r} may not open this page", code="wrong_role")
    return Page(request, info, token)


async def _form(request: Request, page: Page | None) -> dict[str, str]:
    """The posted form; with a session, its CSRF field must match the session's token (else 403)."""
    async with request.form(max_files=0) as raw:  # a console form carries no files
        form = {k: v for k, v in raw.items() if isinstance(v, str)}
    if page is not None:
        token = request.cookies.get(COOKIE) or ""
        if not check_csrf(token, form.get("csrf")):
            raise Forbidden("missing or wrong CSRF token; reload the page", code="csrf_failed")
    return form


def render(
    request: Request, template_name: str, page: Page | None = None, status: int = 200, **ctx: Any
) -> HTMLResponse:
    settings = _services(request).settings
    base = {
        "request": request,
        "page": page,
        "who": page.who if page else None,
        "csrf": page.csrf if page else "",
        "break_minutes": settings.console_break_minutes,
        "now": datetime.now(UTC),
        "prefix": PREFIX,
    }
    return HTMLResponse(env.get_template(template_name).render(**base, **ctx), status_code=status)


Handler = Callable[..., Awaitable[Response]]


def _error_page(request: Request, exc: SafeguardError, page: Page | None) -> HTMLResponse:
    return render(request, "error.html", page, status=exc.status, error=exc)


def guarded(fn: Handler) -> Handler:
    """Console handlers answer in HTML: a missing session redirects to the login page, an error is a page
    with its status and code (a 409 claim held by another, a 403 wrong role, a 403 CSRF failure)."""
    import functools

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        request: Request = kwargs["request"]
        try:
            return await fn(*args, **kwargs)
        except _Redirect as r:
            return RedirectResponse(r.to, status_code=303)
        except SafeguardError as exc:
            page = None
            try:
                page = await _page(request, READ_ROLES | {"auditor", "platform"}, allow_temporary=True)
            except (_Redirect, SafeguardError):
                page = None
            return _error_page(request, exc, page)

    return wrapper


def _secure(request: Request) -> bool:
    mode = _services(request).settings.session_cookie_secure
    return bool(mode == "on" or (mode == "auto" and request.url.scheme == "https"))


# -- login, logout, password --------------------------------------------------------------------------
@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/queue", status_code=303)


@router.get("/login")
@guarded
async def login_form(request: Request) -> Response:
    expired = request.query_params.get("expired") == "1"
    return render(request, "login.html", notice="Your session has ended; log in again." if expired else "")


@router.post("/login")
@guarded
async def login(request: Request) -> Response:
    form = await _form(request, None)
    source = request.client.host if request.client else ""
    try:
        got = await run_in_threadpool(
            _users(request).login,
            form.get("name", "")[:100],
            form.get("password", "")[:256],
            form.get("totp", "")[:12],
            source=source,
        )
    except SafeguardError as exc:
        return render(request, "login.html", status=exc.status, error=exc, name=form.get("name", "")[:100])
    to = f"{PREFIX}/password" if got.session.must_change_password else f"{PREFIX}/queue"
    resp = RedirectResponse(to, status_code=303)
    resp.set_cookie(
        COOKIE,
        got.token,
        max_age=int(_services(request).settings.session_seconds),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    return resp


@router.post("/logout")
@guarded
async def logout(request: Request) -> Response:
    page = await _page(request, READ_ROLES, allow_temporary=True)
    await _form(request, page)
    await run_in_threadpool(_users(request).logout, request.cookies.get(COOKIE) or "")
    resp = RedirectResponse(f"{PREFIX}/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
    return resp


@router.get("/password")
@guarded
async def password_form(request: Request) -> Response:
    page = await _page(request, READ_ROLES, allow_temporary=True)
    return render(request, "password.html", page)


@router.post("/password")
@guarded
async def password_change(request: Request) -> Response:
    page = await _page(request, READ_ROLES, allow_temporary=True)
    form = await _form(request, page)
    if form.get("new_password", "") != form.get("confirm", ""):
        return render(request, "password.html", page, status=400, message="The two new passwords differ.")
    try:
        await run_in_threadpool(
            _users(request).change_password,
            request.cookies.get(COOKIE) or "",
            form.get("password", "")[:256],
            form.get("new_password", "")[:256],
        )
    except SafeguardError as exc:
        return render(request, "password.html", page, status=exc.status, message=exc.message)
    return RedirectResponse(f"{PREFIX}/queue", status_code=303)


# -- the queue --------------------------------------------------------------------------------------
@router.get("/queue")
@guarded
async def queue(request: Request) -> Response:
    page = await _page(request)
    q = request.query_params
    queue_name = q.get("queue") or None
    status = q.get("status") or "open"
    assignee = q.get("assignee") or None
    filt = CaseFilter.parse(queue=queue_name, status=status, priority=None, assignee=assignee)
    got = await run_in_threadpool(_console(request).queue, page.who, filt, cursor=q.get("cursor") or None)
    keep = {k: v for k, v in (("queue", queue_name), ("status", status), ("assignee", assignee)) if v}
    nxt = f"?{urlencode(keep | {'cursor': got.next_cursor})}" if got.next_cursor else ""
    return render(
        request,
        "queue.html",
        page,
        cases=got.cases,
        order=got.order,
        queues=QUEUES,
        statuses=(*STATUSES, "all"),
        f_queue=queue_name or "",
        f_status=status,
        f_assignee=assignee or "",
        next_link=nxt,
        message=q.get("msg", "")[:200],
    )


@router.post("/claim-next")
@guarded
async def claim_next(request: Request) -> Response:
    page = await _page(request, WORK_ROLES)
    form = await _form(request, page)
    queue_name = form.get("queue") or None
    if queue_name is not None and queue_name not in QUEUES:
        raise InvalidInput(f"queue must be one of {QUEUES}", code="invalid_queue")
    got = await run_in_threadpool(_cases(request).claim_next, page.who, queue=queue_name)
    if got is None:
        return RedirectResponse(f"{PREFIX}/queue?{urlencode({'msg': 'Nothing left to claim.'})}", status_code=303)
    return RedirectResponse(f"{PREFIX}/cases/{got.id}", status_code=303)


# -- a case -----------------------------------------------------------------------------------------
def _case_id(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) < 2**63:
        raise InvalidInput("case id must be a positive integer", code="invalid_case_id")
    return int(raw)


def _stage(indicator: str) -> str:
    return indicator.split(".", 1)[0].replace("_", " ")


env.globals["stage_of"] = _stage
env.filters["stage_of"] = _stage


def _entries(request: Request, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Provenance and opinions of the matched bank entries."""
    from sqlalchemy import select

    from safeguard.store.models import Bank, BankEntry, EntryOpinion

    if not ids:
        return {}
    db = _cases(request).db
    out: dict[int, dict[str, Any]] = {}
    with db.read() as s:
        for e, bank in s.execute(
            select(BankEntry, Bank.name).join(Bank, Bank.id == BankEntry.bank_id).where(BankEntry.id.in_(ids))
        ):
            out[e.id] = {
                "bank": bank,
                "category": e.category,
                "source": e.source,
                "provenance": e.provenance,
                "added_by": e.added_by,
                "opinion": e.opinion,
                "opinions": [],
            }
        for o in s.execute(
            select(EntryOpinion).where(EntryOpinion.entry_id.in_(ids)).order_by(EntryOpinion.id).limit(200)
        ).scalars():
            if o.entry_id in out:
                out[o.entry_id]["opinions"].append({"opinion": o.opinion, "actor": o.actor, "at": o.created_at})
    return out


def _assignees(request: Request) -> list[str]:
    """Whom a lead may hand a case to: every enabled account that works cases (as ``user:NAME``)."""
    return [f"user:{u.name}" for u in _users(request).list() if u.role in WORK_ROLES and not u.disabled]


def _context(request: Request, case: Any, findings: list[dict[str, Any]]) -> dict[str, Any]:
    """The conversation around each grooming evidence message (web/conversation.py)."""
    if case.subject_kind != "conversation":
        return {}
    evidence = [e for f in findings if f.get("detector") == "grooming" for e in (f.get("evidence") or ())]
    return conversation_context(_cases(request).db, case.subject_id, evidence) if evidence else {}


async def _case_page(request: Request, page: Page, case_id: int, *, status: int = 200, error: Any = None) -> Response:
    cs = _cases(request)
    detail = await run_in_threadpool(cs.get, page.who, case_id)
    timeline = await run_in_threadpool(cs.timeline, page.who, case_id)
    ids = [int(f["entry_id"]) for f in detail.findings if isinstance(f.get("entry_id"), int)]
    entries = await run_in_threadpool(_entries, request, ids)
    prefs = await run_in_threadpool(_console(request).preferences, page.who)
    context = await run_in_threadpool(_context, request, detail.case, detail.findings)
    is_lead = page.who.role in LEAD_ROLES
    assignees = await run_in_threadpool(_assignees, request) if is_lead else []
    return render(
        request,
        "case.html",
        page,
        status=status,
        error=error,
        d=detail,
        c=detail.case,
        timeline=timeline,
        entries=entries,
        prefs=prefs,
        outcomes=OUTCOMES,
        categories=CATEGORIES,
        can_work=page.who.role in WORK_ROLES,
        can_reveal=page.who.role in REVEAL_ROLES,
        mine=detail.case.assignee == page.who.actor,
        context=context,
        is_lead=is_lead,
        assignees=assignees,
    )


@router.get("/cases/{case_id}")
@guarded
async def case_page(case_id: str, request: Request) -> Response:
    page = await _page(request)
    return await _case_page(request, page, _case_id(case_id))


async def _act(request: Request, case_id: str, action: Callable[[Page, int, dict[str, str]], Any]) -> Response:
    page = await _page(request, WORK_ROLES)
    form = await _form(request, page)
    cid = _case_id(case_id)
    try:
        await run_in_threadpool(action, page, cid, form)
    except SafeguardError as exc:
        if exc.status in (404,):
            raise
        return await _case_page(request, page, cid, status=exc.status, error=exc)
    return RedirectResponse(f"{PREFIX}/cases/{cid}", status_code=303)


@router.post("/cases/{case_id}/claim")
@guarded
async def claim(case_id: str, request: Request) -> Response:
    return await _act(
        request, case_id, lambda p, cid, f: _cases(request).claim(p.who, cid, force=f.get("force") == "1")
    )


@router.post("/cases/{case_id}/assign")
@guarded
async def assign(case_id: str, request: Request) -> Response:
    """A lead hands the case to someone, or back to the queue (``assignee`` empty)."""

    def run(p: Page, cid: int, f: dict[str, str]) -> Any:
        if p.who.role not in LEAD_ROLES:
            raise Forbidden("only a lead assigns cases", code="lead_required")
        to = f.get("assignee", "")
        if to and to not in _assignees(request):
            raise InvalidInput("assign the case to an enabled moderator, lead or admin", code="invalid_assignee")
        return _cases(request).assign(p.who, cid, to or None)

    return await _act(request, case_id, run)


@router.post("/cases/{case_id}/release")
@guarded
async def release(case_id: str, request: Request) -> Response:
    return await _act(request, case_id, lambda p, cid, f: _cases(request).release(p.who, cid))


@router.post("/cases/{case_id}/decision")
@guarded
async def decide(case_id: str, request: Request) -> Response:
    def run(p: Page, cid: int, f: dict[str, str]) -> Any:
        outcome = f.get("outcome", "")
        if outcome not in OUTCOMES:
            raise InvalidInput(f"choose an outcome: {', '.join(OUTCOMES)}", code="invalid_outcome")
        return _cases(request).decide(
            p.who, cid, outcome=outcome, category=f.get("category") or None, notes=f.get("notes", "")
        )

    return await _act(request, case_id, run)


# -- media ------------------------------------------------------------------------------------------
def _media_response(png: bytes | None) -> Response:
    if png is None:
        raise InvalidInput("this item is not an image the console can render", code="not_renderable")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/cases/{case_id}/media/{item_id}/preview.png")
@guarded
async def preview(case_id: str, item_id: str, request: Request) -> Response:
    """The blurred greyscale preview, rendered here from the decrypted item (an ``evidence.previewed`` event)."""
    page = await _page(request, REVEAL_ROLES)
    vault = vault_of(_services(request).engine)
    _, data = await run_in_threadpool(
        vault.read,
        item_id[:40],
        actor=page.who.actor,
        reason="console preview (blurred, greyscale)",
        case_id=_case_id(case_id),
        event="evidence.previewed",
    )
    return _media_response(await run_in_threadpool(render_image, data, blurred=True, greyscale=True))


@router.post("/cases/{case_id}/media/{item_id}/reveal")
@guarded
async def reveal(case_id: str, item_id: str, request: Request) -> Response:
    """One item, unblurred (greyscale if the moderator asks for it always), for a stated reason: the vault's
    audited read (``evidence.read`` with the reason). Refused roles are recorded (``evidence.read_denied``)."""
    cid = _case_id(case_id)
    page = await _page(request, READ_ROLES)
    form = await _form(request, page)
    vault = vault_of(_services(request).engine)
    if page.who.role not in REVEAL_ROLES:
        await run_in_threadpool(
            vault.record,
            "evidence.read_denied",
            page.who.actor,
            item_id[:40],
            {"case_id": cid, "role": page.who.role, "reason": form.get("reason", "")[:500]},
        )
        raise Forbidden(f"role {page.who.role!r} may not reveal media", code="wrong_role")
    _, data = await run_in_threadpool(
        vault.read, item_id[:40], actor=page.who.actor, reason=form.get("reason", "")[:501], case_id=cid
    )
    prefs = await run_in_threadpool(_console(request).preferences, page.who)
    png = await run_in_threadpool(render_image, data, blurred=False, greyscale=prefs["greyscale_always"])
    return _media_response(png)


# -- the moderator's page -------------------------------------------------------------------------------
@router.get("/me")
@guarded
async def me(request: Request) -> Response:
    page = await _page(request)
    con = _console(request)
    count = await run_in_threadpool(con.revealed_today, page.who.actor)
    prefs = await run_in_threadpool(con.preferences, page.who)
    return render(request, "me.html", page, revealed=count, prefs=prefs)


@router.post("/me/preferences")
@guarded
async def set_prefs(request: Request) -> Response:
    page = await _page(request)
    form = await _form(request, page)
    await run_in_threadpool(_console(request).set_preferences, page.who, greyscale_always=form.get("greyscale") == "1")
    return RedirectResponse(f"{PREFIX}/me", status_code=303)


# -- audit --------------------------------------------------------------------------------------------
def _date(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a date (YYYY-MM-DD)", code="invalid_date") from exc


async def _audit_rows(request: Request, page: Page) -> tuple[list[Any], dict[str, str]]:
    q = request.query_params
    f = {k: q.get(k, "")[:200] for k in ("actor", "type", "since", "until")}
    until = _date(f["until"], "until")
    rows = await run_in_threadpool(
        _console(request).audit,
        page.who,
        actor=f["actor"] or None,
        type_=f["type"] or None,
        since=_date(f["since"], "since"),
        until=until + timedelta(days=1) if until else None,
    )
    return rows, f


@router.get("/audit")
@guarded
async def audit(request: Request) -> Response:
    page = await _page(request, frozenset({"auditor", "admin"}))
    rows, f = await _audit_rows(request, page)
    return render(request, "audit.html", page, rows=rows, f=f, csv_link=f"{PREFIX}/audit.csv?{urlencode(f)}")


@router.get("/audit.csv")
@guarded
async def audit_csv(request: Request) -> Response:
    page = await _page(request, frozenset({"auditor", "admin"}))
    rows, _ = await _audit_rows(request, page)
    import json

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["seq", "created_at", "type", "actor", "subject", "payload"])
    for r in rows:
        cells = [
            str(r.seq),
            r.created_at.isoformat(),
            r.type,
            r.actor,
            r.subject,
            json.dumps(r.payload, sort_keys=True),
        ]
        # a cell a spreadsheet would run as a formula is quoted with a leading apostrophe
        w.writerow(["'" + c if c[:1] in ("=", "+", "-", "@") else c for c in cells])
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="safeguard-audit.csv"'},
    )


# -- quality ------------------------------------------------------------------------------------------
@router.get("/qa")
@guarded
async def qa(request: Request) -> Response:
    page = await _page(request, frozenset({"lead", "admin"}))
    con = _console(request)
    sample = await run_in_threadpool(con.qa_queue, page.who)
    rates = await run_in_threadpool(con.agreement, page.who)
    return render(request, "qa.html", page, sample=sample, rates=rates, share=con.qa_share)


@router.post("/qa/{case_id}")
@guarded
async def qa_review(case_id: str, request: Request) -> Response:
    page = await _page(request, frozenset({"lead", "admin"}))
    form = await _form(request, page)
    agree = form.get("agree")
    if agree not in ("1", "0"):
        raise InvalidInput("say whether you agree (1) or not (0)", code="invalid_input")
    await run_in_threadpool(
        _console(request).qa_review, page.who, _case_id(case_id), agree=agree == "1", notes=form.get("notes", "")
    )
    return RedirectResponse(f"{PREFIX}/qa", status_code=303)


# -- hash-list quality (banks/quality.py) -------------------------------------------------------------
LEADS = frozenset({"lead", "admin"})


def _bank_quality(db: Any) -> list[dict[str, Any]]:
    from safeguard.banks import BankService, quality

    return [quality.bank_quality(db, b.name, top=5) for b in BankService(db).list_banks()]


def _entry_id(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) < 2**63:
        raise InvalidInput("entry id must be a positive integer", code="invalid_input")
    return int(raw)


@router.get("/banks")
@guarded
async def banks_quality(request: Request) -> Response:
    page = await _page(request, LEADS)
    banks = await run_in_threadpool(_bank_quality, _cases(request).db)
    return render(request, "banks.html", page, banks=banks)


@router.post("/banks/{bank}/entries/{entry_id}/release")
@guarded
async def release_entry(bank: str, entry_id: str, request: Request) -> Response:
    from safeguard.banks import quality

    page = await _page(request, LEADS)
    form = await _form(request, page)
    await run_in_threadpool(
        quality.release, _cases(request).db, bank, _entry_id(entry_id), actor=page.who.actor, note=form.get("note", "")
    )
    return RedirectResponse(f"{PREFIX}/banks", status_code=303)


def install(app: FastAPI) -> None:
    """Mount the console on the app: its pages, its static files (served from the package), its headers."""
    svc: Services = app.state.services
    app.state.console = ConsoleService(svc.engine.db, svc.settings, svc.cases)  # the console's own part
    app.include_router(router)
    for r in extra_routers:
        app.include_router(r, prefix=PREFIX)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_middleware(SecurityHeaders)
