"""Prometheus metrics. Served at /metrics (no auth: bind it to an internal network)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, generate_latest

from safeguard.metrics import REGISTRY

SCANS = Counter("safeguard_scans_total", "Scans by verdict and content kind", ["verdict", "kind"], registry=REGISTRY)
SCAN_SECONDS = Histogram(
    "safeguard_scan_seconds",
    "Scan latency inside the API",
    ["kind"],
    registry=REGISTRY,
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
INDEX_ENTRIES = Gauge("safeguard_index_entries", "Entries in this process's index", ["signal_type"], registry=REGISTRY)
INDEX_QUARANTINED = Gauge(
    "safeguard_index_quarantined_entries",
    "Bank entries this process's index has quarantined since start: rows it could not load (see the "
    "index.entry_quarantined events)",
    ["signal_type"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge("safeguard_outbox_pending", "Webhook deliveries waiting", registry=REGISTRY)
REPORTS = Gauge("safeguard_reports", "Reports to law enforcement by state", ["state"], registry=REGISTRY)
REPORT_SECONDS = Gauge(
    "safeguard_report_seconds",
    "Report timeliness percentiles: match to confirmation, confirmation to submission (seconds)",
    ["interval", "quantile"],
    registry=REGISTRY,
)


def observe_scan(verdict: str, kind: str, seconds: float) -> None:
    SCANS.labels(verdict=verdict, kind=kind).inc()
    SCAN_SECONDS.labels(kind=kind).observe(seconds)


def render() -> bytes:
    return generate_latest(REGISTRY)
