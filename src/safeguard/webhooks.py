"""Webhook signing and verification (HMAC-SHA256), shared by the delivery worker and integrators.

Each delivery carries::

    Safeguard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
    Safeguard-Event: <topic>            e.g. decision.block, stream.terminate
    Safeguard-Delivery: <outbox id>     the same on every retry: use it to de-duplicate

A receiver recomputes the HMAC over the raw body bytes, compares in constant time, and rejects
timestamps older than a tolerance (replay protection). :func:`verify_signature` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Safeguard-Signature"
EVENT_HEADER = "Safeguard-Event"
DELIVERY_HEADER = "Safeguard-Delivery"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance: int = 300, now: int | None = None) -> bool:
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    current = int(time.time()) if now is None else now
    if abs(current - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)
