"""The live-stream monitor: watch many streams per process and ask the platform to end abusive ones.

One thread per stream (decoding and network reads release the GIL; the per-frame Python work is a
few milliseconds), each doing:

    open (HTTP(S) and HLS fetched by Safeguard through the egress policy, RTMP to a checked address;
          local files for tests, paced at 1x)
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

Every connection passes the egress policy (``safeguard/egress.py``) when it is made, not only when the
stream is registered: HTTP(S) and HLS are fetched here (``stream_source.py``) and fed to PyAV, so
redirects and each segment are checked too; RTMP is resolved and checked here and FFmpeg is given the
checked address. A refused address fails the stream at once with ``egress_refused: <what and why>``;
network failures show only ``stream_unreachable`` (the detail goes to the log), so the ``error`` field
cannot be used to learn which internal ports answer.

State lives in the ``streams`` table (``streams_store.py``), written on every state change and at
most every ``persist_seconds`` while watching.
"""

from __future__ import annotations

import logging
import re
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
from sqlalchemy import func, or_, select, text, update

from safeguard.actions.terminate_stream import TOPIC as TERMINATE_TOPIC
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Decision, Finding, Signal, Verdict
from safeguard.detectors.base import ScanContext
from safeguard.egress import EgressPolicy, EgressRefused, Target, parse_url
from safeguard.engine import Engine
from safeguard.errors import InvalidInput, NotFound, SafeguardError
from safeguard.media.video import DecodeMode, FrameHash, FrameSampler, Pacer
from safeguard.metrics import REGISTRY
from safeguard.store.models import DEFAULT_TENANT, OutboxMessage, utcnow
from safeguard.workers.stream_source import HttpSource, SourceUnreachable, SourceUnsupported
from safeguard.workers.streams_store import ACTIVE_STATES, StreamInfo, StreamRow

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

URL_SCHEMES = ("http://", "https://", "rtmp://", "rtmps://")
SCHEMES = tuple(s[:-3] for s in URL_SCHEMES)
#: schemes FFmpeg reads but whose connections the egress policy cannot follow (RTSP redirects and its
#: RTP/UDP media addresses, SRT): refused with a reason rather than opened unchecked
UNCHECKABLE = ("rtsp", "rtsps", "rtmpt", "rtmpts", "rtmpe", "srt", "udp", "rtp", "tcp", "tls", "ftp")
UNREACHABLE = "stream_unreachable: no video could be read from the URL (the server log has the detail)"
_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_PG_STREAMS_LOCK = 0x5347_5354  # pg_advisory_xact_lock key serialising stream registrations (the limits)


class TooManyStreams(SafeguardError):
    code = "too_many_streams"
    status = 429


@dataclass(frozen=True)
class StreamConfig:
    """Monitor settings: the ``stream_*`` rows of the one settings table (``SAFEGUARD_STREAM_<NAME>``, e.g.
    SAFEGUARD_STREAM_SAMPLE_INTERVAL); the defaults here equal the table's."""

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
    def from_settings(cls, settings: Settings, **overrides: Any) -> StreamConfig:
        """The monitor's part of the settings table (``SAFEGUARD_STREAM_<NAME>``), with overrides."""
        values: dict[str, Any] = {f.name: getattr(settings, "stream_" + f.name) for f in fields(cls)}
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> StreamConfig:
        return cls.from_settings(Settings.from_env(environ), **overrides)


def _not_found(stream_id: str) -> NotFound:
    return NotFound(f"stream {stream_id!r} not found", code="stream_not_found")


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
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        self.monitor = monitor
        self.tenant = tenant
        self.engine = monitor.engine
        self.id = stream_id
        self.url = url
        self.platform_stream_id = platform_stream_id
        self.user_id = user_id
        self.config = config
        self.policy: EgressPolicy = monitor.policy
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
    def snapshot(self) -> StreamInfo:
        with self._lock:
            s = replace(self.state, findings=list(self.state.findings))
        me: dict[str, Any] = {
            "id": self.id,
            "stream_id": self.platform_stream_id,
            "url": self.url,
            "user_id": self.user_id,
        }
        return StreamInfo(**me, tenant=self.tenant, **vars(s))  # no times: those are the row's

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
                if row.status == "stopped" and snap.status in ACTIVE_STATES:
                    self.stop_event.set()  # DELETE arrived at another process: stop here too
                    return
                for k in ("status", "frames_sampled", "last_frame_time", "findings", "decision_id", "case_id"):
                    setattr(row, k, getattr(snap, k))
                row.error = snap.error[:4000]
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
        is_file = "://" not in self.url
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
            except EgressRefused as exc:  # a policy answer, not a network one: no retry
                log.warning("stream %s: egress refused: %s", self.id, exc.message)
                self._set(status="failed", error=f"egress_refused: {exc.message}")
                return
            except InvalidInput as exc:  # a URL (or a redirect's) that does not parse
                self._set(status="failed", error=f"egress_refused: {exc.message}")
                return
            except SourceUnsupported as exc:
                self._set(status="failed", error=f"stream_unsupported: {exc}")
                return
            except (av.error.FFmpegError, OSError, SourceUnreachable) as exc:
                detail = f"{type(exc).__name__}: {exc}"
                if is_file:
                    error = detail
                else:  # the network's answer stays in the log: callers must not learn what answered
                    log.info("stream %s: %s", self.id, detail)
                    error = UNREACHABLE
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
    _source: HttpSource | None = None  # the HTTP source being read, if any

    def _connect_and_read(self, is_file: bool) -> bool:
        """Read until the stream ends (True), stops or terminates (False); network errors raise.

        An HTTP source's own failure (a refused segment, a dropped connection) ends its bytes early;
        it is raised here, in place of whatever FFmpeg made of the early end.
        """
        self._source = None
        try:
            container, source = self._open(is_file)
            ended = self._demux(container, source)
        except Exception:
            if self._source is not None and self._source.error is not None:
                raise self._source.error from None
            raise
        if ended and source is not None and source.error is not None:
            raise source.error
        return ended

    def _open(self, is_file: bool) -> tuple[Any, HttpSource | None]:
        """The container to demux, and the HTTP source feeding it (closed with it) when there is one."""
        cfg = self.config
        timeout = (cfg.open_timeout, cfg.read_timeout)
        if is_file:
            if not self.monitor.config.allow_files and not cfg.allow_files:
                raise EgressRefused("local file paths are read only with SAFEGUARD_STREAM_ALLOW_FILES=1")
            if not Path(self.url).exists():
                raise FileNotFoundError(f"no such file: {self.url}")
            return (
                av.open(
                    self.url,
                    mode="r",
                    options={"protocol_whitelist": "file"},
                    timeout=timeout,
                    metadata_errors="replace",
                ),
                None,
            )
        target = parse_url(self.url, SCHEMES, code="invalid_stream_url")
        if target.scheme in ("http", "https"):
            since = time.monotonic()
            src = HttpSource(
                self.url,
                self.policy,
                self.stop_event,
                open_timeout=cfg.open_timeout,
                read_timeout=cfg.read_timeout,
                hold_seconds=max(3.0, cfg.give_up_after),
                stalled=lambda: (
                    time.monotonic() - max(since, self._progress_at) > cfg.give_up_after + cfg.sample_interval
                ),
            )
            self._source = src
            try:
                # the bytes come from ``src`` only: FFmpeg may open no URL of its own (a demuxer that
                # names further resources, as HLS or concat do, gets none)
                return av.open(src, mode="r", options={"protocol_whitelist": "none"}, metadata_errors="replace"), src
            except BaseException:
                src.close()
                raise
        return self._open_rtmp(target), None

    def _open_rtmp(self, target: Target) -> Any:
        """RTMP(S) to an address resolved and checked here: FFmpeg is given the address, not the name."""
        cfg = self.config
        ip = self.policy.pin(target.host, target.port)[0]
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        p = target.parts
        userinfo = p.netloc.rpartition("@")[0]  # RTMP credentials, if any, kept as given
        url = f"{target.scheme}://{userinfo + '@' if userinfo else ''}{host}:{target.port}{p.path}"
        url += f"?{p.query}" if p.query else ""
        options = {
            "rw_timeout": str(int(cfg.read_timeout * 1_000_000)),
            # FFmpeg may open only these protocols for it: no protocol of its choosing, no other host
            "protocol_whitelist": "rtmps,tls,tcp" if target.scheme == "rtmps" else "rtmp,tcp",
        }
        # metadata decoded with replacement: one non-UTF-8 tag must not stop a stream from being watched
        return av.open(
            url, mode="r", options=options, timeout=(cfg.open_timeout, cfg.read_timeout), metadata_errors="replace"
        )

    def _demux(self, container: Any, source: HttpSource | None) -> bool:
        cfg = self.config
        is_file = source is None and "://" not in self.url
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
            if source is not None:
                source.close()

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
            tenant=self.tenant,
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
        self.config = config or StreamConfig.from_settings(engine.settings)
        self.watchers: dict[str, StreamWatcher] = {}
        self._lock = threading.Lock()
        self._outbox = OutboxWorker(engine.db, engine.settings)
        self.policy = EgressPolicy.from_settings(engine.settings)

    # -- registering ---------------------------------------------------------------------------
    def check_url(self, url: str) -> str:
        """Registration: the URL parsed strictly, and its host's addresses checked by the egress policy now
        (they are checked again at every connection)."""
        url = url.strip()
        if not url:
            raise InvalidInput("url is required", code="invalid_stream_url")
        if "://" in url:
            scheme = url.split("://", 1)[0].lower()
            if scheme in UNCHECKABLE:
                raise InvalidInput(
                    f"{scheme} is not accepted: its connections cannot be checked by the egress policy; "
                    f"use one of {list(SCHEMES)}",
                    code="invalid_stream_url",
                )
            target = parse_url(url, SCHEMES, code="invalid_stream_url")
            self.policy.check_target(target)
            return url
        if _URL_LIKE.match(url) and not Path(url).exists():
            raise InvalidInput(f"unsupported stream URL; use one of {list(SCHEMES)}", code="invalid_stream_url")
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
        tenant: str = DEFAULT_TENANT,
        key_id: int | None = None,
    ) -> StreamInfo:
        """Start watching; ``key_id`` (the API key registering it) counts toward its limit."""
        url = self.check_url(url)
        if not platform_stream_id:
            raise InvalidInput("stream_id (the platform's id for the stream) is required", code="missing_stream_id")
        sid = new_stream_id()
        with self.engine.db.write() as s:
            self._check_limits(s, key_id)
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
                    tenant=tenant,
                    key_id=key_id,
                )
            )
        return self._start(StreamWatcher(self, sid, url, platform_stream_id, user_id, config or self.config, tenant))

    def _check_limits(self, s: Any, key_id: int | None) -> None:
        """``SAFEGUARD_STREAMS_MAX_TOTAL`` and ``_MAX_PER_KEY``, counted in the database (every process's
        streams) inside the registering transaction: SQLite's write lock, or an advisory lock on
        PostgreSQL, keeps two registrations from both taking the last place."""
        st = self.engine.settings
        if not st.streams_max_total and not (key_id is not None and st.streams_max_per_key):
            return
        if not self.engine.db.is_sqlite:
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_STREAMS_LOCK})
        active = StreamRow.status.in_(ACTIVE_STATES)
        if st.streams_max_total:
            total = s.execute(select(func.count()).select_from(StreamRow).where(active)).scalar_one()
            if total >= st.streams_max_total:
                raise TooManyStreams(
                    f"{total} streams are being watched, the most allowed (SAFEGUARD_STREAMS_MAX_TOTAL)",
                    details={"limit": "total", "max": st.streams_max_total},
                )
        if key_id is not None and st.streams_max_per_key:
            mine = s.execute(
                select(func.count()).select_from(StreamRow).where(active, StreamRow.key_id == key_id)
            ).scalar_one()
            if mine >= st.streams_max_per_key:
                raise TooManyStreams(
                    f"this key has {mine} streams watched, the most allowed (SAFEGUARD_STREAMS_MAX_PER_KEY); "
                    "stop one first",
                    details={"limit": "per_key", "max": st.streams_max_per_key},
                )

    def _start(self, w: StreamWatcher) -> StreamInfo:
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
            w = StreamWatcher(self, row.id, row.url, row.platform_stream_id, row.user_id, self.config, row.tenant)
            w.state.frames_sampled = row.frames_sampled
            w.state.findings = list(row.findings or [])
            w._time_offset = (row.last_frame_time or 0.0) + self.config.sample_interval
            self._start(w)
            adopted.append(row.id)
        return adopted

    def stop(self, stream_id: str, *, tenant: str | None = None) -> StreamInfo:
        """Stop watching; with ``tenant``, only that tenant's stream (another's is ``NotFound``)."""
        with self._lock:
            w = self.watchers.get(stream_id)
        if w is not None and tenant is not None and w.tenant != tenant:
            raise _not_found(stream_id)
        if w is None:
            state = self.get(stream_id, tenant=tenant)  # NotFound if unknown, or another tenant's
            if state.status in ACTIVE_STATES:  # watched by another process, or by one that died
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

    def get(self, stream_id: str, *, tenant: str | None = None) -> StreamInfo:
        """A stream's state; with ``tenant``, only that tenant's (another's is ``NotFound``, as if unknown)."""
        with self._lock:
            w = self.watchers.get(stream_id)
        if w is not None:
            if tenant is not None and w.tenant != tenant:
                raise _not_found(stream_id)
            return w.snapshot()
        with self.engine.db.read() as s:
            row = s.get(StreamRow, stream_id)
            if row is None or (tenant is not None and row.tenant != tenant):
                raise _not_found(stream_id)
            return StreamInfo.of(row)

    def streams(self, *, active_only: bool = False, limit: int = 100, tenant: str | None = None) -> list[StreamInfo]:
        with self.engine.db.read() as s:
            q = select(StreamRow).order_by(StreamRow.created_at.desc()).limit(limit)
            if tenant is not None:
                q = q.where(StreamRow.tenant == tenant)
            if active_only:
                q = q.where(StreamRow.status.in_(ACTIVE_STATES))
            rows = [StreamInfo.of(r) for r in s.execute(q).scalars()]
        return [self.get(r.id) if r.id in self.watchers else r for r in rows]

    def wait(self, stream_id: str, timeout: float | None = None) -> StreamInfo:
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
        return self.engine.findings([ScanContext(content=content, signals=signals)])[0]

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
