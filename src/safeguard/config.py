"""Settings: one table (name, type, default, help), read once from ``SAFEGUARD_*`` environment variables.

The table is the single source: :func:`Settings.from_env` reads it, ``docs/operators.md`` documents it
(a test fails when a setting is undocumented), and ``safeguard settings`` prints it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from safeguard.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "SAFEGUARD_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", str, "./var", "Directory for the SQLite database, index snapshots and other local state."),
    Setting(
        "database_url",
        str,
        "",
        "SQLAlchemy URL. Empty: SQLite at DATA_DIR/safeguard.db. PostgreSQL: postgresql+psycopg://user:pass@host/db",
    ),
    Setting("policy_file", str, "", "Path to the policy YAML. Empty: the packaged default policy."),
    Setting("host", str, "127.0.0.1", "Address `safeguard serve` listens on."),
    Setting("port", int, 8000, "Port `safeguard serve` listens on."),
    Setting("workers", int, 1, "API worker processes for `safeguard serve`."),
    Setting(
        "serve_balance",
        str,
        "dispatch",
        "How `safeguard serve` spreads connections over its workers: dispatch (the parent accepts and hands"
        " them out in turn) or reuseport (a socket per worker, the kernel hashes connections over them).",
    ),
    Setting(
        "max_upload_bytes",
        int,
        50 * 1024 * 1024,
        "Largest upload accepted by /v1/scan, in bytes (413 above).",
    ),
    Setting("max_image_pixels", int, 100_000_000, "Largest decoded image, in pixels (decompression-bomb guard)."),
    Setting("index_refresh_seconds", float, 0.5, "How often a process checks the database for bank changes."),
    Setting(
        "webhook_url",
        str,
        "",
        "Default webhook endpoint for decisions (more can be added with `safeguard webhooks add`).",
    ),
    Setting("webhook_secret", str, "", "HMAC-SHA256 secret for the default webhook endpoint."),
    Setting("webhook_max_attempts", int, 12, "Delivery attempts before a webhook is marked dead."),
    Setting("webhook_timeout_seconds", float, 5.0, "Timeout for one webhook delivery attempt."),
    Setting("outbox_poll_seconds", float, 0.5, "How often the delivery worker polls the outbox."),
    Setting("run_worker", bool, True, "Run the outbox delivery worker inside the API process."),
    Setting("log_level", str, "info", "Log level: debug, info, warning, error."),
    Setting(
        "pdq_decode",
        str,
        "fast",
        "How uploads are decoded for PDQ: `fast` (JPEG luma reduced by DCT scaling, hashed with the reference's "
        "filter for the original size; see docs/performance.md) or `exact` (full decode, the reference's hash "
        "bit for bit).",
    ),
    Setting(
        "pdq_draft_size",
        int,
        256,
        "Short side (pixels) `fast` PDQ decoding may scale JPEGs down to (by 1/2, 1/4 or 1/8); smaller JPEGs "
        "are decoded in full.",
    ),
    Setting(
        "grooming_state_ttl_seconds",
        float,
        30 * 24 * 3600.0,
        "Grooming detection: conversation and user state idle longer than this expires (seconds).",
    ),
    Setting("grooming_max_text_chars", int, 4000, "Grooming detection: longest message text accepted (413 above)."),
    Setting(
        "grooming_state_cache_entries",
        int,
        20_000,
        "Grooming detection: conversation and sender state rows each process keeps in memory (0: none). "
        "Writes are checked against the row's version, so a stale copy is noticed and reloaded.",
    ),
    Setting(
        "rate_limit_per_second",
        float,
        5000.0,
        "Requests per second each API key may make to /v1, per API process (a token bucket; 429 with "
        "Retry-After above it). 0: no limit.",
    ),
    Setting(
        "rate_limit_burst",
        int,
        10000,
        "Requests an API key may make at once before RATE_LIMIT_PER_SECOND applies (the bucket's size).",
    ),
    Setting(
        "auth_failures_per_minute",
        int,
        60,
        "Requests without a valid API key each client address may make per minute, per API process; above "
        "it, 429 with Retry-After and the key is not looked up. 0: no limit.",
    ),
    Setting(
        "sqlite_synchronous",
        str,
        "FULL",
        "SQLite's synchronous mode: FULL (every acknowledged commit survives a power cut) or NORMAL (faster "
        "commits; a power cut may lose the last ones, a process crash loses none).",
    ),
    Setting(
        "egress_allow",
        str,
        "",
        "Outbound connections (stream pulls, their redirects and HLS segments, webhooks): comma-separated host "
        "names (`*.example.com` for subdomains), addresses and CIDRs allowed even when private, loopback or "
        "link-local; a metadata address (169.254.169.254, ...) only when listed itself. See docs/security.md.",
    ),
    Setting(
        "egress_default",
        str,
        "public",
        "Outbound connections to addresses not in SAFEGUARD_EGRESS_ALLOW: `public` (public addresses allowed, "
        "special ranges refused) or `deny` (everything not listed refused).",
    ),
    Setting("streams_max_per_key", int, 100, "Streams one API key may have watched at once (429 above; 0: no limit)."),
    Setting(
        "streams_max_total", int, 500, "Streams watched at once by all processes together (429 above; 0: no limit)."
    ),
    Setting(
        "signing_key_file",
        str,
        "",
        "Ed25519 key that signs the event log's checkpoints. Empty: DATA_DIR/keys/signing.key (created, mode "
        "0600, on first need). Keep it outside the database, ideally a mounted secret.",
    ),
    Setting(
        "checkpoint_interval_seconds",
        float,
        300.0,
        "How often the service signs the event log's head into a stored checkpoint (0: only on demand).",
    ),
    Setting(
        "secrets_key_file",
        str,
        "",
        "AES-256-GCM key sealing secrets at rest (webhook secrets). Empty: DATA_DIR/keys/secrets.key (created, "
        "mode 0600, on first need). Keep it outside the database, ideally a mounted secret.",
    ),
    Setting(
        "max_json_bytes",
        int,
        8 * 1024 * 1024,
        "Largest JSON request body, in bytes (413 above).",
    ),
    Setting("max_json_depth", int, 32, "Deepest nesting of arrays and objects accepted in JSON input (422 above)."),
    Setting(
        "vault_key_file",
        str,
        "",
        "Evidence vault master key (made by `safeguard vault init`; 32 random bytes, base64). Empty: "
        "DATA_DIR/vault.key (./scripts/serve runs `safeguard vault init` on a first start). With `preserve` in the "
        "policy, a key that is missing, unreadable or not the one that wrapped the stored items stops the service "
        "from starting; the service never makes one.",
    ),
    Setting(
        "vault_retention_days",
        int,
        365,
        "Days a preserved evidence item is kept before `safeguard vault purge` may delete it (not on legal hold).",
    ),
    Setting(
        "vault_fsync",
        str,
        "background",
        "When the evidence vault fsyncs a preserved file. Every mode writes it before the decision is answered, "
        "so a killed process loses nothing. `background`: a thread fsyncs new files within about a second. "
        "`request`: before answering (survives a power loss; one disk flush per preserved upload). `off`: the "
        "kernel writes it back (within about 30 s on Linux).",
    ),
    Setting(
        "review_bank",
        str,
        "moderator-confirmed",
        "Bank that a moderator's `confirmed` decision adds the case's hashes to (created, kind csam, if missing).",
    ),
    Setting(
        "review_second_opinion",
        str,
        "off",
        "Cases that need a second, different reviewer to agree before the decision stands: `off`, "
        "`not_violating` (only decisions that clear the content) or `all`.",
    ),
    Setting("review_claim_seconds", float, 1800.0, "How long a moderator's claim on a case lasts (seconds)."),
    Setting(
        "review_sla",
        str,
        "csam=1h/4h/24h,grooming=1h/4h/24h,streams=15m/1h/4h,user_reports=1h/24h/72h",
        "Time to a decision per queue and priority: `queue=P0/P1/P2` durations (s, m, h, d); a priority "
        "past the last given uses the last. Sets each case's due time.",
    ),
    Setting("login_max_failures", int, 5, "Failed logins in a row (wrong password or TOTP) that lock an account."),
    Setting("login_lockout_seconds", float, 900.0, "How long a locked account stays locked (seconds)."),
    Setting("session_seconds", float, 28800.0, "Lifetime of a moderator's login session (seconds)."),
    Setting(
        "session_cookie_secure",
        str,
        "auto",
        "The session cookie's Secure flag: `auto` (when the request came over HTTPS), `on` or `off`.",
    ),
    Setting("user_report_max_text_chars", int, 2000, "Longest free text accepted in a user report (413 above)."),
    Setting(
        "decode_memory_bytes",
        int,
        640 * 1024 * 1024,
        "Bytes that concurrent image and video decodes in one worker process may hold together (estimated from "
        "each file's header before decoding; 0: no budget). Over it a request waits, then gets 503 `decode_busy`; "
        "one decode larger than all of it gets 413 `over_memory_budget`. See docs/hardening.md.",
    ),
    Setting(
        "decode_wait_seconds",
        float,
        5.0,
        "How long a request waits for room in the decode memory budget before 503 `decode_busy` (with Retry-After).",
    ),
    Setting(
        "video_async_pixel_seconds",
        float,
        250_000_000.0,
        "Videos whose frame size times duration (pixels x seconds, from the header) is over this are scanned in "
        "the background (202 and a `scan.completed` webhook) instead of inside the request.",
    ),
    Setting(
        "animation_max_frames",
        int,
        64,
        "Animated and multi-frame images (GIF, WebP, APNG, AVIF, TIFF, MPO, HEIF): frames hashed and matched at "
        "most; longer animations are sampled evenly from the first frame to the last.",
    ),
    Setting(
        "animation_max_pixels",
        int,
        400_000_000,
        "Animated images: pixels decoded at most over all frames (frames x canvas, each frame counted as at "
        "least 65,536); above it the upload gets 413 `animation_too_large`.",
    ),
    Setting(
        "unhashable",
        str,
        "review",
        "Verdict for media Safeguard recognises but cannot hash perceptually (only exact hashes computed): "
        "review, allow or block. The decision's finding and reason are `unhashable` either way.",
    ),
    Setting(
        "queue_order",
        str,
        "priority_age",
        "The console queue's order: `priority_age` (priority, then oldest first), `reports` (most user reports "
        "first) or `risk` (block verdicts first, then priority and age).",
    ),
    Setting("console_break_minutes", float, 50.0, "Minutes of console work before a break reminder (0: none)."),
    Setting(
        "review_qa_share",
        float,
        0.05,
        "Share (0..1) of decided cases sampled for a lead's second look in the console's quality page.",
    ),
    Setting(
        "video_async_bytes",
        int,
        8 * 1024 * 1024,
        "Videos larger than this (bytes) are scanned in the background (202, then a webhook).",
    ),
    Setting("video_async_seconds", float, 120.0, "Videos longer than this (seconds) are scanned in the background."),
    Setting("stream_sample_interval", float, 1.0, "Live streams: seconds of stream between hashed frames."),
    Setting(
        "stream_suspicious_interval", float, 0.25, "Live streams: seconds between hashed frames while under suspicion."
    ),
    Setting(
        "stream_suspicion_seconds",
        float,
        30.0,
        "Live streams: how long suspicion lasts after a low-confidence finding.",
    ),
    Setting(
        "stream_give_up_after",
        float,
        60.0,
        "Live streams: seconds without a frame (reconnecting) before the stream is failed.",
    ),
    Setting("stream_open_timeout", float, 10.0, "Live streams: seconds to connect."),
    Setting("stream_read_timeout", float, 10.0, "Live streams: seconds a read may stall before reconnecting."),
    Setting("stream_max_side", int, 512, "Live streams: frames are scaled to this longest side before hashing."),
    Setting(
        "stream_decode_mode",
        str,
        "auto",
        "Live streams: keyframes, all, or auto (keyframes while they are frequent enough).",
    ),
    Setting(
        "stream_persist_seconds", float, 2.0, "Live streams: how often a watcher writes its counters to the database."
    ),
    Setting(
        "stream_allow_files",
        bool,
        False,
        "Live streams: accept local file paths (tests, demos); never on a public API.",
    ),
    Setting(
        "reports_auto_draft", bool, True, "A confirmed case with a category gets a draft report per reported user."
    ),
    Setting(
        "reports_self_approve",
        bool,
        False,
        "Let the reviewer who confirmed a case approve its report too (one-person teams only).",
    ),
    Setting(
        "reports_overdue_hours", float, 24.0, "Hours after confirmation before a report without `finished` is overdue."
    ),
    Setting("reporter_organisation", str, "", "The reporting organisation's name, as the report's reporter."),
    Setting("reporter_contact", str, "", 'The contact person at the reporting organisation ("First Last").'),
    Setting("reporter_email", str, "", "The contact person's email address."),
    Setting("reporter_phone", str, "", "The contact person's phone number."),
    Setting(
        "ncmec_url",
        str,
        "https://exttest.cybertip.org/ispws",
        "NCMEC's CyberTipline API base URL (the test environment by default; production must be set explicitly).",
    ),
    Setting("ncmec_username", str, "", "The CyberTipline API user name."),
    Setting(
        "ncmec_password",
        str,
        "",
        "The CyberTipline API password, sealed (`safeguard secrets seal`); never logged.",
    ),
    Setting(
        "dsa_url",
        str,
        "",
        "The DSA Transparency Database's base URL (its sandbox while testing, then production); empty: not sent.",
    ),
    Setting(
        "dsa_token",
        str,
        "",
        "The Transparency Database API's Bearer token, sealed (`safeguard secrets seal --purpose dsa`); never logged.",
    ),
    Setting("dsa_batch_size", int, 100, "Statements of reasons per request to the Transparency Database (1-100)."),
    Setting("dsa_timeout_seconds", float, 30.0, "Seconds to wait for the Transparency Database's answer."),
    Setting(
        "dsa_illegal_ground",
        str,
        "Directive 2011/93/EU on combating the sexual abuse and sexual exploitation of children, Article 5 "
        "(offences concerning child sexual abuse material), as transposed into national law",
        "Statements of reasons: the legal ground cited for illegal content (CSAM matches).",
    ),
    Setting(
        "dsa_incompatible_ground",
        str,
        "Terms of service: protection of minors (no sexual contact with, grooming or exploitation of children)",
        "Statements of reasons: the terms-of-service ground cited for content or conduct incompatible with them.",
    ),
    Setting(
        "dsa_ground_url",
        str,
        "",
        "Statements of reasons: the public URL of the terms or law cited (decision_ground_reference_url).",
    ),
    Setting(
        "reports_submit_interval_seconds",
        float,
        0.0,
        "Seconds between the service's report submitter passes (each process; one submits a report at a time); 0: off.",
    ),
    Setting(
        "transparency_min_count",
        int,
        10,
        'Transparency reports show counts from 1 to this minus one as "fewer than N" in HTML and CSV.',
    ),
    Setting(
        "exchange_poll_seconds",
        float,
        60.0,
        "How often the service pulls each partner feed it subscribes to (`safeguard exchange add`) and sends "
        "opinions back; 0 turns the follower off (`safeguard exchange sync` still works).",
    ),
    Setting(
        "exchange_page_size",
        int,
        50000,
        "Entries per page of a partner feed, asked for by a subscriber and the most a publisher serves (1-50000).",
    ),
    Setting(
        "surge_distinct",
        int,
        50,
        "An entry that matches this many distinct uploads (by SHA-256) within SURGE_WINDOW_SECONDS is"
        " quarantined: its matches go to review instead of block until a lead releases it. 0: off.",
    ),
    Setting("surge_window_seconds", float, 600.0, "The sliding window of the surge quarantine, in seconds."),
    Setting(
        "quality_flush_seconds",
        float,
        1.0,
        "How often a process writes its buffered per-entry match figures (and checks surges), in seconds.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _parse(setting: Setting, raw: str) -> Any:
    try:
        if setting.type is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        return setting.type(raw)
    except ValueError as exc:
        raise ConfigError(
            f"{setting.env}={raw!r} is not a valid {setting.type.__name__}", code="invalid_setting"
        ) from exc


@dataclass(frozen=True)
class Settings:
    data_dir: str = "./var"
    database_url: str = ""
    policy_file: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    serve_balance: str = "dispatch"
    max_upload_bytes: int = 50 * 1024 * 1024
    max_image_pixels: int = 100_000_000
    index_refresh_seconds: float = 0.5
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_max_attempts: int = 12
    webhook_timeout_seconds: float = 5.0
    outbox_poll_seconds: float = 0.5
    run_worker: bool = True
    log_level: str = "info"
    pdq_decode: str = "fast"
    pdq_draft_size: int = 256
    grooming_state_ttl_seconds: float = 30 * 24 * 3600.0
    grooming_max_text_chars: int = 4000
    grooming_state_cache_entries: int = 20_000
    rate_limit_per_second: float = 5000.0
    rate_limit_burst: int = 10000
    auth_failures_per_minute: int = 60
    sqlite_synchronous: str = "FULL"
    egress_allow: str = ""
    egress_default: str = "public"
    streams_max_per_key: int = 100
    streams_max_total: int = 500
    signing_key_file: str = ""
    checkpoint_interval_seconds: float = 300.0
    secrets_key_file: str = ""
    max_json_bytes: int = 8 * 1024 * 1024
    max_json_depth: int = 32
    vault_key_file: str = ""
    vault_retention_days: int = 365
    vault_fsync: str = "background"
    review_bank: str = "moderator-confirmed"
    review_second_opinion: str = "off"
    review_claim_seconds: float = 1800.0
    review_sla: str = "csam=1h/4h/24h,grooming=1h/4h/24h,streams=15m/1h/4h,user_reports=1h/24h/72h"
    login_max_failures: int = 5
    login_lockout_seconds: float = 900.0
    session_seconds: float = 28800.0
    session_cookie_secure: str = "auto"
    user_report_max_text_chars: int = 2000
    decode_memory_bytes: int = 640 * 1024 * 1024
    decode_wait_seconds: float = 5.0
    video_async_pixel_seconds: float = 250_000_000.0
    animation_max_frames: int = 64
    animation_max_pixels: int = 400_000_000
    unhashable: str = "review"
    queue_order: str = "priority_age"
    console_break_minutes: float = 50.0
    review_qa_share: float = 0.05
    video_async_bytes: int = 8 * 1024 * 1024
    video_async_seconds: float = 120.0
    stream_sample_interval: float = 1.0
    stream_suspicious_interval: float = 0.25
    stream_suspicion_seconds: float = 30.0
    stream_give_up_after: float = 60.0
    stream_open_timeout: float = 10.0
    stream_read_timeout: float = 10.0
    stream_max_side: int = 512
    stream_decode_mode: str = "auto"
    stream_persist_seconds: float = 2.0
    stream_allow_files: bool = False
    reports_auto_draft: bool = True
    reports_self_approve: bool = False
    reports_overdue_hours: float = 24.0
    reporter_organisation: str = ""
    reporter_contact: str = ""
    reporter_email: str = ""
    reporter_phone: str = ""
    ncmec_url: str = "https://exttest.cybertip.org/ispws"
    ncmec_username: str = ""
    ncmec_password: str = ""
    dsa_url: str = ""
    dsa_token: str = ""
    dsa_batch_size: int = 100
    dsa_timeout_seconds: float = 30.0
    dsa_illegal_ground: str = (
        "Directive 2011/93/EU on combating the sexual abuse and sexual exploitation of children, Article 5 "
        "(offences concerning child sexual abuse material), as transposed into national law"
    )
    dsa_incompatible_ground: str = (
        "Terms of service: protection of minors (no sexual contact with, grooming or exploitation of children)"
    )
    dsa_ground_url: str = ""
    reports_submit_interval_seconds: float = 0.0
    transparency_min_count: int = 10
    exchange_poll_seconds: float = 60.0
    exchange_page_size: int = (
        50000  # catching up, 50k-row pages cost ~27% less than 10k (bench/results/2026-12-06-exchange-bench.txt)
    )
    surge_distinct: int = 50
    surge_window_seconds: float = 600.0
    quality_flush_seconds: float = 1.0

    @property
    def hash_draft(self) -> int:
        """What :class:`~safeguard.media.Media` gets as ``hash_draft`` (0: full decode)."""
        if self.pdq_decode not in ("fast", "exact"):
            raise ConfigError(
                f"SAFEGUARD_PDQ_DECODE must be fast or exact, not {self.pdq_decode!r}", code="invalid_setting"
            )
        return self.pdq_draft_size if self.pdq_decode == "fast" else 0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for s in SETTINGS:
            if s.env in env:
                values[s.name] = _parse(s, env[s.env])
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        path = Path(self.data_dir).resolve() / "safeguard.db"
        return f"sqlite:///{path}"

    @property
    def data_path(self) -> Path:
        p = Path(self.data_dir)
        p.mkdir(parents=True, exist_ok=True)
        return p


def _check_table_matches_dataclass() -> None:
    names = {f.name for f in fields(Settings)}
    if names != set(_BY_NAME):  # pragma: no cover - guards a programming error
        raise RuntimeError(f"SETTINGS table and Settings dataclass differ: {names ^ set(_BY_NAME)}")
    for f in fields(Settings):
        if f.default != _BY_NAME[f.name].default:  # pragma: no cover
            raise RuntimeError(f"default for {f.name} differs between SETTINGS and Settings")


_check_table_matches_dataclass()
