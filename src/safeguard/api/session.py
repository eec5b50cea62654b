"""Logging in (``/v1/session``) and who is acting: an API key, or a person's session cookie.

Routes for people and services alike (cases, later the console) depend on :func:`acting`: an API key
(``Authorization: Bearer`` or ``X-API-Key``) wins; otherwise the ``sg_session`` cookie, and then every
unsafe method (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safeguard.accounts import SessionInfo, UserService, Who, check_csrf, csrf_token
from safeguard.api.deps import Services, authenticate, services
from safeguard.errors import Forbidden

router = APIRouter(prefix="/v1", tags=["session"])

COOKIE = "sg_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def users_of(request: Request) -> UserService:
    svc: Services = request.app.state.services
    return svc.users


async def _session(request: Request, *, allow_temporary: bool = False) -> tuple[SessionInfo, str]:
    token = request.cookies.get(COOKIE)
    info = await run_in_threadpool(users_of(request).session, token)
    assert token is not None
    if request.method not in SAFE_METHODS and not check_csrf(token, request.headers.get(CSRF_HEADER)):
        raise Forbidden("missing or wrong CSRF token (send the session's token in X-CSRF-Token)", code="csrf_failed")
    if info.must_change_password and not allow_temporary:
        raise Forbidden(
            "change the one-time password first (POST /v1/session/password)", code="password_change_required"
        )
    return info, token


async def acting(request: Request, svc: Services = Depends(services)) -> Who:
    """Who makes this request: an API key's principal, else the logged-in person (with CSRF checks)."""
    authz, xkey = request.headers.get("authorization"), request.headers.get("x-api-key")
    if authz or xkey or COOKIE not in request.cookies:
        p = await authenticate(svc, authz, xkey)
        return Who(actor=p.actor, role=p.role, name=p.name, kind="key")
    info, _ = await _session(request)
    return info.who


def require_who(*roles: str) -> Callable[..., Awaitable[Who]]:
    """A dependency admitting the given roles (``admin`` always) by key or by session."""
    allowed = frozenset(roles) | {"admin"}

    async def dep(who: Who = Depends(acting)) -> Who:
        if who.role not in allowed:
            raise Forbidden(f"role {who.role!r} may not do this; needs one of {sorted(allowed)}", code="wrong_role")
        return who

    return dep


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=256)
    totp: str = Field(min_length=1, max_length=12, description="the current 6-digit code of the user's TOTP app")


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


def _secure(request: Request) -> bool:
    mode = request.app.state.services.settings.session_cookie_secure
    return mode == "on" or (mode == "auto" and request.url.scheme == "https")


def _session_body(info: SessionInfo, csrf: str) -> dict[str, Any]:
    return {
        "user": {"name": info.who.name, "role": info.who.role},
        "csrf_token": csrf,
        "expires_at": info.expires_at.isoformat(),
        "must_change_password": info.must_change_password,
    }


@router.post("/session", summary="Log in with name, password and TOTP code; sets the session cookie")
def login(body: LoginIn, request: Request) -> JSONResponse:
    source = request.client.host if request.client else ""
    got = users_of(request).login(body.name, body.password, body.totp, source=source)
    resp = JSONResponse(_session_body(got.session, got.csrf_token))
    resp.set_cookie(
        COOKIE,
        got.token,
        max_age=int(request.app.state.services.settings.session_seconds),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    return resp


@router.get("/session", summary="The current session (and its CSRF token)")
async def current_session(request: Request) -> dict[str, Any]:
    info, token = await _session(request, allow_temporary=True)
    return _session_body(info, csrf_token(token))


@router.delete("/session", status_code=204, summary="Log out")
async def logout(request: Request) -> Response:
    _, token = await _session(request, allow_temporary=True)
    await run_in_threadpool(users_of(request).logout, token)
    resp = Response(status_code=204)
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
    return resp


@router.post("/session/password", status_code=204, summary="Change the password (the one-time one first)")
async def change_password(body: PasswordIn, request: Request) -> Response:
    _, token = await _session(request, allow_temporary=True)
    await run_in_threadpool(users_of(request).change_password, token, body.password, body.new_password)
    return Response(status_code=204)
