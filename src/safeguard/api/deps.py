"""Request dependencies: the engine and services (from app state), and role-checked principals."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from safeguard.accounts import UserService
from safeguard.api.auth import SCOPE_KEY, Gate
from safeguard.banks import BankService
from safeguard.cases import CaseService
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.errors import Forbidden
from safeguard.keys import KeyService, Principal

if TYPE_CHECKING:  # built on first use: importing them loads models and starts nothing until then
    from safeguard.detectors.grooming.service import GroomingService
    from safeguard.exchange.feed import Feed
    from safeguard.reports.service import ReportService
    from safeguard.user_reports.service import UserReportService
    from safeguard.workers.streams import StreamMonitor
    from safeguard.workers.video_jobs import VideoScanJobs

_T = TypeVar("_T")


@dataclass
class Services:
    """Everything a request handler uses, built once per app in ``create_app`` (``app.state.services``).

    The parts that are costly to build or start threads (the grooming model, the stream monitor, the
    video job pool, the exchange feed's signer) are built on first use by their accessor, once, under a
    lock; ``shutdown`` stops those that were built."""

    engine: Engine
    keys: KeyService
    banks: BankService
    settings: Settings
    cases: CaseService
    users: UserService
    gate: Gate | None = None  # key check and rate limits before the body (api/auth.py); None: key check only
    _built: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _once(self, name: str, build: Callable[[], _T]) -> _T:
        got = self._built.get(name)
        if got is None:
            with self._lock:
                got = self._built.get(name)
                if got is None:
                    got = self._built[name] = build()
        return got

    def grooming(self) -> GroomingService:
        """The conversations' grooming service (it holds the loaded model)."""
        from safeguard.detectors.grooming.service import GroomingService

        return self._once("grooming", lambda: GroomingService(self.engine))

    def reports(self) -> ReportService:
        """Law-enforcement reports (``safeguard.reports``)."""
        from safeguard.reports.service import ReportService

        return self._once("reports", lambda: ReportService(self.engine.db, self.settings))

    def user_reports(self) -> UserReportService:
        """User reports, which score a reported conversation with :meth:`grooming`."""
        from safeguard.user_reports.service import UserReportService

        return self._once("user_reports", lambda: UserReportService(self.engine, grooming=self.grooming))

    def video_jobs(self) -> VideoScanJobs:
        """The pool that scans deferred videos in the background (202 now, a webhook later)."""
        from safeguard.workers.video_jobs import VideoScanJobs

        return self._once("video_jobs", lambda: VideoScanJobs(self.engine))

    def stream_monitor(self) -> StreamMonitor:
        """The process's live-stream monitor; built on first use, when it adopts the streams a dead
        process was watching."""
        from safeguard.workers.streams import StreamMonitor

        def build() -> StreamMonitor:
            mon = StreamMonitor(self.engine)
            mon.adopt_orphans()
            return mon

        return self._once("stream_monitor", build)

    def exchange_feed(self) -> Feed:
        """The shared banks' signed feed (reads, or creates, the instance's signing key)."""
        from safeguard.exchange.feed import MAX_PAGE, Feed
        from safeguard.ledger import Signer

        return self._once(
            "exchange_feed", lambda: Feed(self.engine.db, Signer.from_settings(self.settings), max_page=MAX_PAGE)
        )

    def provide(self, name: str, part: object) -> None:
        """Use ``part`` as the named part (``"stream_monitor"``, ``"grooming"``, ...) instead of building
        one: for tests and programs that embed the API with their own configuration."""
        with self._lock:
            self._built[name] = part

    def shutdown(self) -> None:
        """Stop the background parts that were built (the stream monitor, the video job pool)."""
        for name in ("stream_monitor", "video_jobs"):
            part = self._built.get(name)
            if part is not None:
                part.shutdown()


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
