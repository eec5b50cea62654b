"""Conversation features for one sender, computed from :class:`SenderState` in O(1).

Stage features are per-stage indicator counts (capped) and the best exemplar similarity (shifted so
that unrelated text scores zero). Context features say who is talking to whom: an adult or unknown
newly contacting a minor, a new account, and how many distinct minors the sender has contacted.
Escalation is the number of distinct stages reached per message sent: fast movement through stages
is itself a signal.
"""

from __future__ import annotations

import math

import numpy as np

from safeguard.detectors.grooming.indicators import STAGES
from safeguard.detectors.grooming.state import SenderState

SIM_FLOOR = 0.3
SIM_SEEN = 0.6
MINOR_BANDS = ("child", "teen")

FEATURES: tuple[str, ...] = (
    *(f"hit_{s}" for s in STAGES),
    *(f"sim_{s}" for s in STAGES),
    "stages_seen",
    "escalation",
    "adult_to_minor",
    "unknown_to_minor",
    "minor_to_minor",
    "new_contact",
    "new_account",
    "many_minors",
)


def sim_feature(sim: float) -> float:
    return max(0.0, sim - SIM_FLOOR) / (1.0 - SIM_FLOOR)


def stage_seen(st: SenderState, i: int) -> bool:
    return st.hits[i] > 0 or st.sim[i] >= SIM_SEEN


def stage_scores(st: SenderState) -> dict[str, float]:
    """A display score per stage (0-1): an indicator hit counts 0.8, similarity adds the rest."""
    out = {}
    for i, s in enumerate(STAGES):
        h = min(st.hits[i], 2) * 0.4
        out[s] = round(1.0 - (1.0 - h) * (1.0 - sim_feature(st.sim[i])), 3)
    return out


def features(st: SenderState, minors_contacted: int) -> np.ndarray:
    seen = sum(stage_seen(st, i) for i in range(len(STAGES)))
    minor_rcpt = st.to_minor
    band = st.band
    x = [min(h, 3) / 3.0 for h in st.hits]
    x += [sim_feature(v) for v in st.sim]
    x += [
        seen / len(STAGES),
        min(1.0, seen / (1.0 + st.n / 4.0) / 2.0),
        float(band == "adult" and minor_rcpt),
        float(band == "unknown" and minor_rcpt),
        float(band in MINOR_BANDS and minor_rcpt),
        float(not st.prior),
        float(st.acct is not None and st.acct < 30),
        min(1.0, math.log1p(max(0, minors_contacted - 1)) / math.log(10)),
    ]
    return np.asarray(x, dtype=np.float64)
