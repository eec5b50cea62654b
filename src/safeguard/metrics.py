"""The Prometheus registry every layer records into.

It lives below every other module, so workers, detectors and the index can count things without
importing the HTTP API (``safeguard.api.metrics`` defines the API's metrics on it and serves it).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry(auto_describe=True)

__all__ = ["REGISTRY"]
