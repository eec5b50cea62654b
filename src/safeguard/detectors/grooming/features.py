"""Conversation features for one sender, computed from :class:`SenderState` in O(1).

Stage features are per-stage indicator counts (capped) and the best exemplar similarity (shifted so
that unrelated text scores zero). Context features say who is talking to whom: an adult or unknown
newly contacting a minor, a new account, and how many distinct minors the sender has contacted.
Escalation is the number of distinct stages reached per message sent: fast movement through stages
is itself a signal.

Trajectory features (issue 18, after the first author-disjoint run): stage *order* (a late stage such
as photos, meeting, isolation or pressure first shown after an early one such as rapport, probing,
secrecy or gifts), the number of distinct stages the sender showed *while writing to a minor and not
being a child* (an adult or unknown contact escalating towards a child, as opposed to adults talking
about children with each other), and *quoting*: the mean, over the sender's stage-like messages, of a
learned probability that the message quotes or reports what someone else said (a child reporting a
contact, a parent or teacher discussing warning signs, a safety lesson). The quoting head is learned
from the authors' data (see :mod:`.stageclf`), not a phrase list. Models name the features they use,
so the v1 model (the first 26) keeps working.
"""

from __future__ import annotations

import math

import numpy as np

from safeguard.detectors.grooming.indicators import STAGES
from safeguard.detectors.grooming.state import SenderState

SIM_FLOOR = 0.3
SIM_SEEN = 0.6
MINOR_BANDS = ("child", "teen")

FEATURES_V1: tuple[str, ...] = (
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
TRAJECTORY: tuple[str, ...] = ("stage_order", "stages_to_minor", "adult_to_adult", "quoting", "stages_direct")
LINE: tuple[str, ...] = ("line_max", "line_sum", "line_to_minor")
# model v4: the line head's evidence and the stages shown to a minor, discounted by the sender's
# quoting (a lesson, a report or a warning carries the same stages and lines as grooming, but about it)
DIRECT: tuple[str, ...] = ("line_direct", "line_sum_direct", "line_to_minor_direct", "stages_to_minor_direct")
FEATURES: tuple[str, ...] = (*FEATURES_V1, *TRAJECTORY, *LINE, *DIRECT)
EARLY = ("rapport", "probing", "secrecy", "gifts")
LATE = ("isolation", "photos", "pressure", "meeting")


_EARLY = [STAGES.index(s) for s in EARLY]
_LATE = [STAGES.index(s) for s in LATE]


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
    early = [st.first[i] for i in _EARLY if st.first[i] >= 0]
    late = [st.first[i] for i in _LATE if st.first[i] >= 0]
    grown_to_minor = band != "child" and minor_rcpt
    quoting = st.q / st.qw if st.qw > 0 else 0.0
    x += [
        float(bool(early) and bool(late) and min(early) < max(late)),
        seen / len(STAGES) if grown_to_minor else 0.0,
        float(band == "adult" and not minor_rcpt),
        quoting,
        seen / len(STAGES) * (1.0 - quoting),
        st.g,
        min(1.0, st.gs / 3.0),
        st.g if grown_to_minor else 0.0,
    ]
    direct = 1.0 - quoting
    x += [
        st.g * direct,
        min(1.0, st.gs / 3.0) * direct,
        st.g * direct if grown_to_minor else 0.0,
        seen / len(STAGES) * direct if grown_to_minor else 0.0,
    ]
    return np.asarray(x, dtype=np.float64)


# Sextortion: the rule fires on pressure/threat evidence, never on the risk alone (issue 18: it had
# fired at risks 0.24 and 0.03 on benign conversations where a child reported a threat).
SEXTORTION_THREAT = 0.5  # the threat head's probability (models that have one)
#: ... a threat this clear is evidence whatever the sender's risk; below it (model v5's rule) a threat
#: also needs a sender risk of at least SEXTORTION_WEAK_RISK (an older sibling's "give it back or I tell
#: mum" scored 0.52-0.55 at risk 0.0-0.11)
SEXTORTION_THREAT_CLEAR = 0.7
#: ... from a sender whose risk is at least this (model v6: v5 let a clear threat fire at any risk, and a
#: teenage sibling's "hurry up, it's 2 minutes" over a maths sheet scored 0.73 at risk 0.04) ...
SEXTORTION_CLEAR_RISK = 0.2
#: ... unless the threat is this certain (a cold-open "100 euros in an hour or the video goes to all your
#: friends" scores 0.92-0.95 under v6; no benign conversation of the authors reached 0.8)
SEXTORTION_THREAT_CERTAIN = 0.85
#: ... when a threat-to-share indicator or the stage heads corroborate it (v4: 0.25; v5: 0.35, since
#: parents', tutors' and siblings' directives scored 0.27-0.32 with a corroboration)
SEXTORTION_THREAT_WITH_INDICATOR = 0.35
SEXTORTION_PRESSURE = 0.6  # else: the stage heads' pressure evidence
SEMANTIC_PRESSURE = 0.7  # the stage heads' pressure probability that is evidence (``pressure.semantic``)
SEXTORTION_QUOTING = 0.5  # above this the sender is talking *about* threats (reporting, teaching)
#: the sender's risk any threat short of SEXTORTION_THREAT_CLEAR needs (v4: only the stage heads'
#: corroboration needed it): on its own, a weak threat plus a directive after a photo request is also a
#: tutor checking homework, and a middling one a sibling's teasing
SEXTORTION_WEAK_RISK = 0.2
#: a threat-to-share indicator (explicit wording) with a threat-head score this low is still evidence from
#: a sender whose risk is at least SEXTORTION_INDICATOR_RISK (the head scored a groomer's "i'll share the
#: pics with everyone unless you answer" 0.23)
SEXTORTION_INDICATOR_THREAT = 0.2
SEXTORTION_INDICATOR_RISK = 0.5
_PRESSURE = STAGES.index("pressure")
_PHOTOS = STAGES.index("photos")


def quoting(st: SenderState) -> float:
    return st.q / st.qw if st.qw > 0 else 0.0


def answering_report(senders: dict[str, SenderState], sender_id: str) -> bool:
    """Whether another participant of the conversation reads as reporting or quoting (quote mean >= 0.5)."""
    return any(k != sender_id and quoting(o) >= SEXTORTION_QUOTING for k, o in senders.items())


def sextortion_signal(st: SenderState, threat_indicator: bool, answering_report: bool = False) -> bool:
    """Sextortion evidence for one sender, from a sender who is not a child, writing to a minor, not
    quoting or reporting someone else nor (model v4's rule) answering someone who is (``answering_report``,
    see :func:`answering_report`): with a threat head (learned from the groomers' pressure lines),
    its probability >= 0.85 on some message, or >= 0.7 from a sender whose risk is at least
    :data:`SEXTORTION_CLEAR_RISK` (model v6's rule; v5 took 0.7 at any risk); or, from a sender whose
    risk is at least :data:`SEXTORTION_WEAK_RISK`, >= 0.5, or >= 0.35 with a threat-to-share indicator
    or with the stage heads' pressure (>= 0.7) after a photo/call request, or >= 0.2 with a
    threat-to-share indicator from a sender whose risk is at least 0.5 (model v5's rule: v4 also fired
    at any risk from 0.5, from 0.25 when corroborated, and on both corroborations whatever the head said);
    without a threat head, pressure shown by the stage heads (>= 0.6) with a threat-to-share indicator
    or a photo/call request behind it."""
    if st.band == "child" or not st.to_minor or quoting(st) >= SEXTORTION_QUOTING:
        return False
    if answering_report:
        # an adult answering a child's report restates the threat to the child ("he said he'd share
        # your photos unless..."): threat evidence, but about someone else's threat
        return False
    if st.t > 0.0:
        # a certain threat; or, from a sender the model already finds somewhat risky (not on low risk
        # alone, as issue 18 asks), a clear threat, a threat, or a weaker one corroborated by a
        # threat-to-share indicator or by the stage heads' pressure evidence after the sender asked for
        # a photo or a call
        if st.t >= SEXTORTION_THREAT_CERTAIN or (st.t >= SEXTORTION_THREAT_CLEAR and st.risk >= SEXTORTION_CLEAR_RISK):
            return True
        if st.risk < SEXTORTION_WEAK_RISK:
            return False
        pressure_after_photos = st.sim[_PRESSURE] >= SEMANTIC_PRESSURE and stage_seen(st, _PHOTOS)
        corroborated = threat_indicator or pressure_after_photos
        return (
            st.t >= SEXTORTION_THREAT
            or (corroborated and st.t >= SEXTORTION_THREAT_WITH_INDICATOR)
            or (threat_indicator and st.t >= SEXTORTION_INDICATOR_THREAT and st.risk >= SEXTORTION_INDICATOR_RISK)
        )
    pressure = st.sim[_PRESSURE] >= SEXTORTION_PRESSURE or (st.hits[_PRESSURE] > 0 and st.sim[_PRESSURE] >= 0.4)
    return pressure and (threat_indicator or stage_seen(st, _PHOTOS))
