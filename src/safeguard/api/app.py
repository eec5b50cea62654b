"""The app factory. Tests call ``create_app(settings)`` with their own settings; ``safeguard serve``
runs ``create_app_from_env`` under uvicorn (one app per worker process)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from starlette.types import ASGIApp

from safeguard import __version__, web
from safeguard.accounts import UserService
from safeguard.api import (
    admin,
    banks,
    cases,
    conversations,
    docs,
    errors,
    evidence,
    quality,
    records,
    reports,
    scan,
    session,
    statements,
    streams,
    transparency,
    user_reports,
)
from safeguard.api.auth import AuthMiddleware, Gate
from safeguard.api.deps import Services
from safeguard.api.jsonbody import StrictJSONMiddleware
from safeguard.api.limits import BodyLimitMiddleware
from safeguard.banks import BankService
from safeguard.cases import CaseService
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.exchange import api as exchange_api
from safeguard.exchange.follower import ExchangeService, Follower
from safeguard.keys import KeyService
from safeguard.ledger import CheckpointTimer
from safeguard.webhook_store import seal_at_start
from safeguard.workers.outbox import OutboxWorker, WebhookTransport
from safeguard.workers.report_submitter import ReportSubmitterWorker

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, transport: WebhookTransport | None = None
) -> FastAPI:
    settings = settings or Settings.from_env()
    engine = engine or Engine(settings)
    keys = KeyService(engine.db)
    gate = Gate(keys, settings)
    banks_svc = BankService(engine.db)
    svc = Services(
        engine=engine,
        keys=keys,
        banks=banks_svc,
        settings=settings,
        cases=CaseService(engine.db, settings, banks_svc),
        users=UserService(engine.db, settings),
        gate=gate,
    )
    worker = OutboxWorker(engine.db, settings, transport) if settings.run_worker else None
    checkpoints = CheckpointTimer(engine.db, settings)
    submitter = ReportSubmitterWorker(engine.db, settings)  # off unless SAFEGUARD_REPORTS_SUBMIT_INTERVAL_SECONDS
    follower = Follower(ExchangeService(engine.db, settings), settings.exchange_poll_seconds if worker else 0.0)

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[None]:
        seal_at_start(engine.db, settings, actor="system")
        if worker is not None:
            worker.start()
        checkpoints.start()
        submitter.start()
        follower.start()
        try:
            yield
        finally:
            follower.stop()
            submitter.stop()
            checkpoints.stop()
            try:  # the buffered per-entry figures (banks/quality.py)
                await asyncio.to_thread(engine.quality.flush)
            except Exception:
                log.exception("writing entry quality figures at shutdown failed")
            if worker is not None:
                worker.stop()
            svc.shutdown()

    app = SafeguardAPI(
        title="Safeguard",
        version=__version__,
        description="Self-hostable child-safety engine: scan uploads against hash banks, record every decision.",
        lifespan=lifespan,
        docs_url=None,  # served offline by api.docs instead of from a CDN
        redoc_url=None,
    )
    app.state.services = svc
    app.state.worker = worker
    app.state.report_submitter = submitter
    app.state.settings = settings  # the console's templates read it; handlers use ``svc.settings``
    errors.install(app)
    docs.install(app)
    for r in (scan.router, banks.router, records.router, admin.router, conversations.router, streams.router):
        app.include_router(r)
    for r in (evidence.router, cases.router, session.router, user_reports.router, reports.router):
        app.include_router(r)
    for r in (exchange_api.router, quality.router):
        app.include_router(r)
    app.include_router(statements.router)
    app.include_router(transparency.router)
    web.install(app)  # the moderator console (/console): pages, static files, security headers
    # A little headroom over the file limit for the multipart envelope and form fields.
    max_body = settings.max_upload_bytes + 64 * 1024
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body)
    # JSON bodies: parsed strictly once, with their own size limit (api/jsonbody.py)
    max_json = min(settings.max_json_bytes, max_body)
    app.add_middleware(StrictJSONMiddleware, max_bytes=max_json, max_depth=settings.max_json_depth)
    app.add_middleware(AuthMiddleware, gate=gate)  # outermost of ours: the key before any body is read
    app.fast_path = partial(scan.HashScanRoute, svc=svc, max_bytes=max_json)
    return app


class SafeguardAPI(FastAPI):
    """FastAPI with an optional ASGI layer in front of its whole middleware stack (``fast_path``).

    Starlette always puts its error middleware outermost, and FastAPI adds two more layers after it;
    each costs a few microseconds per request. The hash-only scan (``scan.HashScanRoute``, the hot
    path) answers before all of them and passes every other request on. Set ``fast_path = None``
    (then reset ``middleware_stack``) to serve everything through FastAPI.
    """

    fast_path: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return self.fast_path(stack) if self.fast_path is not None else stack


def create_app_from_env() -> FastAPI:
    from safeguard.evidence import require_key

    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper())
    require_key(settings)  # an API process never makes its own vault key
    app = create_app()
    freeze_startup_heap()
    return app


def freeze_startup_heap() -> None:
    """Exempt what start-up built (modules, classes, the app, the engine, the indexes) from the cyclic
    garbage collector's full collections.

    A worker holds about 150,000 long-lived objects after start-up, and each full (generation 2)
    collection walked all of them and every element of the large containers among them: 55-140 ms
    in which the worker answered nothing, seen as bursts of eight slow requests in a 2-worker upload
    benchmark (p99 up to 161 ms with a median of 43; bench/results/2026-12-06-performance-history.md, section 5).
    ``gc.freeze()`` moves them to a permanent generation that collections skip; what requests
    allocate is still collected as before. Only ``safeguard serve``'s workers do this: tests build
    many apps in one process and should not keep their garbage.
    """
    gc.collect()
    gc.freeze()
