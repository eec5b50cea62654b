"""Request dependencies: the engine and services (from app state), and role-checked principals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from safeguard.api.auth import SCOPE_KEY, Gate
from safeguard.banks import BankService
from safeguard.engine import Engine
from safeguard.errors import Forbidden
from safeguard.keys import KeyService, Principal


@dataclass
class Services:
    engine: Engine
    keys: KeyService
    banks: BankService
    gate: Gate | None = None  # key check and rate limits before the body (api/auth.py); None: key check only


# The dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a worker
# thread, and three thread hops per request cost more than a hash-only scan itself.


async def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def principal(request: Request, svc: Services = Depends(services)) -> Principal:
    admitted: Principal | None = request.scope.get(SCOPE_KEY)  # by AuthMiddleware, before the body was read
    if admitted is not None:
        return admitted
    return await authenticate(svc, request.headers.get("authorization"), request.headers.get("x-api-key"))


async def authenticate(svc: Services, authorization: str | None, x_api_key: str | None) -> Principal:
    """The principal of a request's API key (``Authorization: Bearer`` or ``X-API-Key``), or ``Unauthorized``."""
    auth = authorization or ""
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else x_api_key
    # a key checked within the last few seconds needs no database read; otherwise read it in a thread
    p = svc.keys.cached(key)
    if p is None:
        p = await run_in_threadpool(svc.keys.authenticate, key)
    return p


def allowed_roles(*roles: str, admin: bool = True) -> frozenset[str]:
    return frozenset(roles) | ({"admin"} if admin else frozenset())


def check_role(p: Principal, allowed: frozenset[str]) -> Principal:
    if p.role not in allowed:
        raise Forbidden(f"role {p.role!r} may not do this; needs one of {sorted(allowed)}", code="wrong_role")
    return p


def require(*roles: str, admin: bool = True) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only the given roles (and ``admin``, unless ``admin=False``)."""
    allowed = allowed_roles(*roles, admin=admin)

    async def dep(p: Principal = Depends(principal)) -> Principal:
        return check_role(p, allowed)

    return dep
