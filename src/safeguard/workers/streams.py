"""The live-stream monitor: watch many streams per process and ask the platform to end abusive ones.

One thread per stream (decoding and network reads release the GIL; the per-frame Python work is a
few milliseconds), each doing:

    open (HLS, RTMP, any URL FFmpeg reads; local files for tests, paced at 1x)
      └─ demux every packet, decode only what is due (keyframes by default, see media/video.py)
           └─ one frame per ``sample_interval`` → PDQ (scaled to ``max_side``) → a ``vpdq`` signal
                └─ the engine's detectors (the same as for uploads) → findings?
                     └─ the engine's policy (``engine.decide``) → block: the ``terminate_stream``
                        action queues a signed ``stream.terminate`` webhook, which is delivered at
                        once; a case holds the frames' times; the watcher stops.

Frames without findings are not recorded as decisions (one per second per stream would swamp the
decision log); a finding of low confidence puts the stream *under suspicion*: every frame is decoded
and sampled every ``suspicious_interval`` for ``suspicion_seconds``. Network errors reconnect with
backoff; after ``give_up_after`` seconds without a frame the stream is marked ``failed`` with the
error. End of stream (an HLS playlist's ENDLIST, an RTMP publisher leaving) is ``ended``. Nothing a
stream sends can crash the process: every error ends in a state and a message.

State lives in the ``streams`` table (``streams_store.py``), written on every state change and at
most every ``persist_seconds`` while watching.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import or_, select, update

from safeguard.actions.terminate_stream import TOPIC as TERMINATE_TOPIC
from safeguard.api.metrics import REGISTRY
from safeguard.content import Content, ContentKind, Decision, Finding, Signal, Verdict
from safeguard.detectors.base import ScanContext
from safeguard.engine import Engine
from safeguard.errors import InvalidInput, NotFound
from safeguard.media.video import DecodeMode, FrameHash, FrameSampler, Pacer
from safeguard.store.models import OutboxMessage, utcnow
from safeguard.workers.streams_store import ACTIVE_STATES, StreamRow, stream_to_dict

log = logging.getLogger(__name__)

FRAMES = Counter("safeguard_stream_frames_total", "Frames sampled from live streams", registry=REGISTRY)
FRAME_SECONDS = Histogram(
    "safeguard_stream_frame_seconds",
    "Detectors on one sampled stream frame (after decoding and hashing)",
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
)
WATCHING = Gauge("safeguard_streams_watched", "Streams this process is watching", registry=REGISTRY)
ENDED = Counter("safeguard_streams_finished_total", "Watches finished, by final state", ["status"], registry=REGISTRY)

URL_SCHEMES = ("http://", "https://", "rtmp://", "rtmps://", "rtsp://", "srt://")


@dataclass(frozen=True)
class StreamConfig:
    """Monitor settings; ``from_env`` reads ``SAFEGUARD_STREAM_<NAME>`` (e.g. SAFEGUARD_STREAM_SAMPLE_INTERVAL)."""

    sample_interval: float = 1.0  # seconds of stream between hashed frames
    suspicious_interval: float = 0.25  # ... while under suspicion
    suspicion_seconds: float = 30.0  # how long suspicion lasts after a low-confidence finding
    give_up_after: float = 60.0  # seconds without a frame (reconnecting) before the stream is "failed"
    open_timeout: float = 10.0  # seconds to connect
    read_timeout: float = 10.0  # seconds a read may stall before reconnecting
    max_side: int = 512  # frames are scaled to this longest side before hashing
    decode_mode: str = "auto"  # keyframes | all | auto (keyframes while they are frequent enough)
    persist_seconds: float = 2.0  # how often a watcher writes its counters to the database
    allow_files: bool = False  # accept local file paths (tests, demos); never on a public API

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> StreamConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get("SAFEGUARD_STREAM_" + f.name.upper())
            if raw is None:
                continue
            if f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif f.type in ("float", float):
                values[f.name] = float(raw)
            elif f.type in ("int", int):
                values[f.name] = int(raw)
            else:
                values[f.name] = raw
        values.update(overrides)
        return cls(**values)


def new_stream_id() -> str:
    return "str_" + uuid.uuid4().hex


@dataclass
class _State:
    """What a watcher knows; mirrored to the database row."""

    status: str = "starting"
    frames_sampled: int = 0
    last_frame_time: float | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    decision_id: str | None = None
    case_id: int | None = None
    error: str = ""


class StreamWatcher:
    """One stream, one thread. Never raises out of :meth:`run`."""

    def __init__(
        self,
        monitor: StreamMonitor,
        stream_id: str,
        url: str,
        platform_stream_id: str,
        user_id: str | None,
        config: StreamConfig,
    ) -> None:
        self.monitor = monitor
        self.engine = monitor.engine
        self.id = stream_id
        self.url = url
        self.platform_stream_id = platform_stream_id
        self.user_id = user_id
        self.config = config
        self.state = _State()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"stream-{stream_id[-8:]}", daemon=True)
        self._lock = threading.Lock()
        self._last_persist = 0.0
        self._suspicious_until = 0.0
        self._decided: set[tuple[Any, ...]] = set()
        self._all_findings: list[Finding] = []
        self._time_offset = 0.0  # stream time already watched before a reconnect
        self.terminated_at: float | None = None  # monotonic time of the terminate decision (benchmarks)

    # -- state ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            s = replace(self.state, findings=list(self.state.findings))
        return {
            "id": self.id,
            "stream_id": self.platform_stream_id,
            "url": self.url,
            "user_id": self.user_id,
            **s.__dict__,
        }

    def _set(self, *, persist: bool = True, **changes: Any) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(self.state, k, v)
        if persist:
            self._persist()

    def _persist(self) -> None:
        self._last_persist = time.monotonic()
        snap = self.snapshot()
        try:
            with self.engine.db.write() as s:
                row = s.get(StreamRow, self.id)
                if row is None:
                    return
                if row.status == "stopped" and snap["status"] in ACTIVE_STATES:
                    self.stop_event.set()  # DELETE arrived at another process: stop here too
                    return
                for k in ("status", "frames_sampled", "last_frame_time", "findings", "decision_id", "case_id"):
                    setattr(row, k, snap[k])
                row.error = snap["error"][:4000]
                row.updated_at = utcnow()
        except Exception:  # the database being briefly unavailable must not end the watch
            log.exception("stream %s: could not persist state", self.id)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._watch()
        except Exception as exc:  # the last line of defence: a state, never a crashed process
            log.exception("stream %s: watcher failed", self.id)
            self._set(status="failed", error=f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.monitor._finished(self)

    def _watch(self) -> None:
        cfg = self.config
        backoff = 0.25
        last_progress = time.monotonic()
        is_file = not self.url.startswith(URL_SCHEMES)
        while not self.stop_event.is_set():
            error = ""
            try:
                ended = self._connect_and_read(is_file)
                if self.state.status == "terminated":
                    return
                if self.stop_event.is_set():
                    break
                if ended:
                    self._set(status="ended")
                    return
            except av.error.FFmpegError as exc:
                error = f"{type(exc).__name__}: {exc}"
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if self.state.frames_sampled and self._progress_at > last_progress:
                last_progress = self._progress_at
                backoff = 0.25
            if self.stop_event.is_set():
                break
            waited = time.monotonic() - last_progress
            if waited >= cfg.give_up_after:
                self._set(status="failed", error=f"gave up after {waited:.0f}s without frames; last error: {error}")
                return
            self._set(status="reconnecting", error=error)
            self.stop_event.wait(min(backoff, max(cfg.give_up_after - waited, 0.05)))
            backoff = min(backoff * 2, 5.0)
        if self.state.status not in ("terminated", "failed", "ended"):
            self._set(status="stopped")

    _progress_at = 0.0

    def _connect_and_read(self, is_file: bool) -> bool:
        """Read until the stream ends (True), stops or terminates (False); network errors raise."""
        cfg = self.config
        options = {"rw_timeout": str(int(cfg.read_timeout * 1_000_000))}
        if self.url.split("?", 1)[0].endswith(".m3u8"):
            # stop reloading an HLS playlist that no longer changes, rather than hang on it forever
            options["m3u8_hold_counters"] = str(max(3, int(cfg.give_up_after)))
        if is_file:
            if not Path(self.url).exists():
                raise FileNotFoundError(f"no such file: {self.url}")
            options = {}
        # metadata decoded with replacement: one non-UTF-8 tag must not stop a stream from being watched
        container = av.open(
            self.url,
            mode="r",
            options=options,
            timeout=(cfg.open_timeout, cfg.read_timeout),
            metadata_errors="replace",
        )
        try:
            if not container.streams.video or container.streams.video[0].codec_context is None:
                raise av.error.InvalidDataError(1094995529, "the stream has no decodable video")  # AVERROR_INVALIDDATA
            vs = container.streams.video[0]
            mode: DecodeMode = cfg.decode_mode if cfg.decode_mode in ("keyframes", "all", "auto") else "auto"  # type: ignore[assignment]
            sampler = FrameSampler(
                vs.codec_context,
                vs.time_base or Fraction(1, 90000),
                interval=cfg.sample_interval,
                mode=mode,
                max_side=cfg.max_side,
            )
            pacer = Pacer() if is_file else None
            self._set(status="watching", error="")
            base = self._time_offset
            last_t = 0.0
            for packet in container.demux(vs):
                if self.stop_event.is_set():
                    return False
                if packet.size == 0:
                    continue
                if pacer is not None and packet.pts is not None and vs.time_base is not None:
                    pacer.wait(float(packet.pts * vs.time_base))
                suspicious = time.monotonic() < self._suspicious_until
                sampler.interval = cfg.suspicious_interval if suspicious else cfg.sample_interval
                sampler.wants_all_frames(suspicious)
                for fh in sampler.feed(packet):
                    last_t = fh.timestamp
                    if self._on_frame(FrameHash(round(base + fh.timestamp, 3), fh.value, fh.quality)):
                        return False
            self._time_offset = base + last_t + cfg.sample_interval
            return True
        finally:
            container.close()

    # -- per frame -----------------------------------------------------------------------------
    def _on_frame(self, fh: FrameHash) -> bool:
        """Match one sampled frame; return True when the stream was terminated."""
        now = time.monotonic()
        self._progress_at = now
        with self._lock:
            self.state.frames_sampled += 1
            self.state.last_frame_time = fh.timestamp
        sig = Signal("vpdq", fh.value, fh.quality, timestamp=fh.timestamp)
        content = Content(
            kind=ContentKind.STREAM,
            stream_id=self.platform_stream_id,
            user_id=self.user_id,
            content_id=f"{self.platform_stream_id}@{fh.timestamp:.3f}",
            context={"safeguard_stream_id": self.id},
        )
        t0 = time.perf_counter()
        findings = self.monitor.detect(content, [sig])
        FRAME_SECONDS.observe(time.perf_counter() - t0)
        FRAMES.inc()
        if not findings:
            if now - self._last_persist >= self.config.persist_seconds:
                self._persist()
            return False
        self._suspicious_until = now + self.config.suspicion_seconds
        keys = {(f.detector, f.bank, f.entry_id, f.confidence) for f in findings}
        if keys <= self._decided:  # the same evidence again: no new decision, keep watching closely
            self._persist()
            return False
        self._decided |= keys
        self._all_findings.extend(findings)
        decision = self.engine.decide(content, list(self._all_findings), signals=[sig], actor="stream-monitor")
        self._record(decision)
        if decision.verdict == Verdict.BLOCK and any(a.name == "terminate_stream" for a in decision.actions):
            self.terminated_at = time.monotonic()
            self._set(status="terminated")
            self.monitor.deliver_now(decision.id)
            return True
        self._persist()
        return False

    def _record(self, decision: Decision) -> None:
        with self._lock:
            self.state.findings = [f.to_dict() for f in decision.findings]
            self.state.decision_id = decision.id
            self.state.case_id = decision.case_id


class StreamMonitor:
    """Watches many streams in one process. Thread-safe; one per process (the API holds one)."""

    def __init__(self, engine: Engine, config: StreamConfig | None = None) -> None:
        from safeguard.workers.outbox import OutboxWorker

        self.engine = engine
        self.config = config or StreamConfig.from_env()
        self.watchers: dict[str, StreamWatcher] = {}
        self._lock = threading.Lock()
        self._outbox = OutboxWorker(engine.db, engine.settings)

    # -- registering ---------------------------------------------------------------------------
    def check_url(self, url: str) -> str:
        url = url.strip()
        if not url:
            raise InvalidInput("url is required", code="invalid_stream_url")
        if url.startswith(URL_SCHEMES):
            return url
        if "://" in url:
            raise InvalidInput(
                f"unsupported stream URL scheme; use one of {[s[:-3] for s in URL_SCHEMES]}", code="invalid_stream_url"
            )
        if not self.config.allow_files:
            raise InvalidInput(
                "local file paths are accepted only with SAFEGUARD_STREAM_ALLOW_FILES=1", code="invalid_stream_url"
            )
        return url

    def watch(
        self,
        url: str,
        *,
        platform_stream_id: str,
        user_id: str | None = None,
        config: StreamConfig | None = None,
    ) -> dict[str, Any]:
        url = self.check_url(url)
        if not platform_stream_id:
            raise InvalidInput("stream_id (the platform's id for the stream) is required", code="missing_stream_id")
        sid = new_stream_id()
        with self.engine.db.write() as s:
            s.add(
                StreamRow(
                    id=sid,
                    platform_stream_id=platform_stream_id,
                    url=url,
                    user_id=user_id,
                    status="starting",
                    frames_sampled=0,
                    findings=[],
                    error="",
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        return self._start(StreamWatcher(self, sid, url, platform_stream_id, user_id, config or self.config))

    def _start(self, w: StreamWatcher) -> dict[str, Any]:
        with self._lock:
            self.watchers[w.id] = w
            WATCHING.set(len(self.watchers))
        w.thread.start()
        return w.snapshot()

    def adopt_orphans(self, stale_after: float = 60.0) -> list[str]:
        """Watch again the streams a dead process left in an active state (no update for ``stale_after`` s).

        Call at process start (and now and then). Each orphan is claimed with a conditional update, so
        when several processes adopt at once each stream goes to exactly one of them.
        """
        cutoff = utcnow() - timedelta(seconds=stale_after)
        with self.engine.db.read() as s:
            stale = list(
                s.execute(
                    select(StreamRow).where(StreamRow.status.in_(ACTIVE_STATES), StreamRow.updated_at < cutoff)
                ).scalars()
            )
        adopted = []
        for row in stale:
            with self.engine.db.write() as s:
                got = len(
                    s.execute(
                        update(StreamRow)
                        .where(StreamRow.id == row.id, StreamRow.updated_at == row.updated_at)
                        .values(status="starting", updated_at=utcnow())
                        .returning(StreamRow.id)
                    ).all()
                )
            if got != 1 or row.id in self.watchers:
                continue
            w = StreamWatcher(self, row.id, row.url, row.platform_stream_id, row.user_id, self.config)
            w.state.frames_sampled = row.frames_sampled
            w.state.findings = list(row.findings or [])
            w._time_offset = (row.last_frame_time or 0.0) + self.config.sample_interval
            self._start(w)
            adopted.append(row.id)
        return adopted

    def stop(self, stream_id: str) -> dict[str, Any]:
        with self._lock:
            w = self.watchers.get(stream_id)
        if w is None:
            state = self.get(stream_id)  # NotFound if unknown
            if state["status"] in ACTIVE_STATES:  # watched by another process, or by one that died
                with self.engine.db.write() as s:
                    row = s.get(StreamRow, stream_id)
                    assert row is not None
                    row.status = "stopped"
                    row.updated_at = utcnow()
                return self.get(stream_id)
            return state
        w.stop_event.set()
        w.thread.join(timeout=self.config.read_timeout + 2)
        return w.snapshot()

    def get(self, stream_id: str) -> dict[str, Any]:
        with self._lock:
            w = self.watchers.get(stream_id)
        if w is not None:
            return w.snapshot()
        with self.engine.db.read() as s:
            row = s.get(StreamRow, stream_id)
            if row is None:
                raise NotFound(f"stream {stream_id!r} not found", code="stream_not_found")
            return stream_to_dict(row)

    def streams(self, *, active_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        with self.engine.db.read() as s:
            q = select(StreamRow).order_by(StreamRow.created_at.desc()).limit(limit)
            if active_only:
                q = q.where(StreamRow.status.in_(ACTIVE_STATES))
            rows = [stream_to_dict(r) for r in s.execute(q).scalars()]
        return [self.get(r["id"]) if r["id"] in self.watchers else r for r in rows]

    def wait(self, stream_id: str, timeout: float | None = None) -> dict[str, Any]:
        with self._lock:
            w = self.watchers.get(stream_id)
        if w is not None:
            w.thread.join(timeout)
        return self.get(stream_id)

    def shutdown(self) -> None:
        with self._lock:
            ws = list(self.watchers.values())
        for w in ws:
            w.stop_event.set()
        for w in ws:
            w.thread.join(timeout=self.config.read_timeout + 2)

    def _finished(self, w: StreamWatcher) -> None:
        w._persist()
        ENDED.labels(status=w.state.status).inc()
        with self._lock:
            if self.watchers.get(w.id) is w:
                del self.watchers[w.id]
            WATCHING.set(len(self.watchers))

    # -- the engine ----------------------------------------------------------------------------
    def detect(self, content: Content, signals: list[Signal]) -> list[Finding]:
        """The engine's detectors on one frame (``Engine.scan`` without recording a decision per frame)."""
        ctx = ScanContext(content=content, signals=signals)
        out: list[Finding] = []
        for det in self.engine.detectors:
            if det.applies(ctx):
                out.extend(det.detect(ctx))
        return out

    def deliver_now(self, decision_id: str) -> int:
        """Deliver this decision's ``stream.terminate`` webhooks now instead of at the worker's next poll.

        Rows are claimed the way the outbox worker claims them (``locked_until``), so the two never
        both send one; a failed attempt is left to the worker's retries.
        """
        now = utcnow()
        with self.engine.db.write() as s:
            q = select(OutboxMessage).where(
                OutboxMessage.topic == TERMINATE_TOPIC,
                OutboxMessage.status == "pending",
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
            )
            if not self.engine.db.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            mine = [m for m in s.execute(q).scalars() if (m.payload or {}).get("decision_id") == decision_id]
            for m in mine:
                m.locked_until = now + timedelta(seconds=60)
        for m in mine:
            try:
                self._outbox.deliver(m)
            except Exception:
                log.exception("stream.terminate delivery for %s failed; the outbox worker will retry", decision_id)
        return len(mine)
