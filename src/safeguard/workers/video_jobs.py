"""Asynchronous video scans: large uploads get ``202`` and a decision id at once; the decision follows.

``POST /v1/scan`` hands a video over ``SAFEGUARD_VIDEO_ASYNC_BYTES`` or longer than
``SAFEGUARD_VIDEO_ASYNC_SECONDS`` (settings; or any video, with ``?async=true``) to :class:`VideoScanJobs`. It writes a ``pending`` decision row, so
``GET /v1/decisions/{id}`` answers at once, and runs :func:`scan_video_job` in a worker thread: the
ordinary ``Engine.scan`` with that id, which completes the row (``done``) with the verdict, findings
and actions in one transaction. Then a ``scan.completed`` webhook carries the decision (or
``scan.failed`` the error, and the row is marked ``failed``) to every endpoint, whatever the verdict:
the platform is waiting for it.

Threads suit this: decoding runs in FFmpeg outside the GIL. A process killed mid-scan leaves the row
``pending``; the platform may resubmit (scans are idempotent apart from the record).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from safeguard.actions.base import ActionContext
from safeguard.actions.webhook import enqueue
from safeguard.config import Settings
from safeguard.content import Content, Decision, Verdict
from safeguard.engine import Engine
from safeguard.errors import SafeguardError
from safeguard.media.budget import patience
from safeguard.store.models import DecisionRow

log = logging.getLogger(__name__)

#: how long a background scan waits for room in the decode memory budget before it fails
BUDGET_PATIENCE_SECONDS = 600.0


def video_duration(data: bytes) -> float | None:
    """The container's duration in seconds, read from its header (cheap); None when it does not say."""
    from safeguard.media.video import read_header

    head = read_header(data)
    return head.seconds if head is not None else None


def should_defer(
    data: bytes,
    settings: Settings,
    *,
    requested: bool = False,
) -> bool:
    """Scan in the background: when asked, or when the video is larger than
    ``SAFEGUARD_VIDEO_ASYNC_BYTES``, longer than ``SAFEGUARD_VIDEO_ASYNC_SECONDS``, or its frame size
    times its duration is over ``SAFEGUARD_VIDEO_ASYNC_PIXEL_SECONDS``: a 7000x7000 video of 20 s
    decodes for a minute, which no request should wait for."""
    from safeguard.media.video import read_header

    if requested or len(data) > settings.video_async_bytes:
        return True
    head = read_header(data)
    if head is None or head.seconds is None:
        return False
    if head.seconds > settings.video_async_seconds:
        return True
    return head.width * head.height * head.seconds > settings.video_async_pixel_seconds


def write_pending(engine: Engine, decision_id: str, content: Content) -> None:
    now = Decision.now()
    with engine.db.write() as s:
        s.add(
            DecisionRow(
                id=decision_id,
                created_at=now,
                verdict="pending",
                status="pending",
                content_kind=content.kind.value,
                content_id=content.content_id,
                user_id=content.user_id,
                policy_version=engine.policy.version,
                tenant=content.tenant,
                body={
                    "id": decision_id,
                    "verdict": None,
                    "content_kind": content.kind.value,
                    "content_id": content.content_id,
                    "user_id": content.user_id,
                    "created_at": now.isoformat(),
                },
            )
        )


def _notify(engine: Engine, content: Content, decision: Decision, topic: str, payload: dict[str, Any]) -> None:
    with engine.db.write() as s:
        ctx = ActionContext(session=s, settings=engine.settings, content=content, decision=decision, actor="system")
        enqueue(ctx, topic, payload)


def scan_video_job(engine: Engine, decision_id: str, content: Content, actor: str = "system") -> Decision | None:
    """Scan ``content`` and complete the pending decision ``decision_id``; never raises."""
    try:
        # nobody holds a connection open for a background scan: wait for room in the decode budget
        with patience(BUDGET_PATIENCE_SECONDS):
            decision = engine.scan(content, actor=actor, decision_id=decision_id)
    except Exception as exc:
        error = (
            exc.to_dict()["error"]
            if isinstance(exc, SafeguardError)
            else {"code": "internal_error", "message": str(exc)}
        )
        if not isinstance(exc, SafeguardError):
            log.exception("video scan %s failed", decision_id)
        try:
            with engine.db.write() as s:
                row = s.get(DecisionRow, decision_id)
                if row is not None:
                    row.status = "failed"
                    row.body = {**row.body, "error": error}
            placeholder = Decision(
                decision_id,
                Verdict.ALLOW,
                (),
                (),
                (),
                engine.policy.version,
                Decision.now(),
                content.kind,
                content.content_id,
                content.user_id,
            )
            _notify(
                engine,
                content,
                placeholder,
                "scan.failed",
                {"type": "scan.failed", "decision_id": decision_id, "error": error},
            )
        except Exception:
            log.exception("could not record the failure of video scan %s", decision_id)
        return None
    try:
        _notify(engine, content, decision, "scan.completed", {"type": "scan.completed", "decision": decision.to_dict()})
    except Exception:
        log.exception("could not queue scan.completed for %s", decision_id)
    return decision


class VideoScanJobs:
    """A small thread pool of video scans for one process (the API holds one)."""

    def __init__(self, engine: Engine, workers: int = 2) -> None:
        self.engine = engine
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="video-scan")
        self.futures: dict[str, Future[Decision | None]] = {}
        self._lock = threading.Lock()

    def submit(self, content: Content, *, actor: str = "system") -> str:
        decision_id = Decision.new_id()
        write_pending(self.engine, decision_id, content)
        fut = self.pool.submit(scan_video_job, self.engine, decision_id, content, actor)
        with self._lock:
            self.futures[decision_id] = fut
        fut.add_done_callback(lambda _f: self._forget(decision_id))
        return decision_id

    def _forget(self, decision_id: str) -> None:
        with self._lock:
            self.futures.pop(decision_id, None)

    def wait(self, decision_id: str, timeout: float | None = None) -> None:
        with self._lock:
            fut = self.futures.get(decision_id)
        if fut is not None:
            fut.result(timeout)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)
