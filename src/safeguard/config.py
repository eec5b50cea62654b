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
    animation_max_frames: int = 64
    animation_max_pixels: int = 400_000_000
    unhashable: str = "review"

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
