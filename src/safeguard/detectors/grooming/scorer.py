"""The pure scoring core: message analysis (indicators + similarity) and the O(1) state update.

No IO here apart from loading the packaged model files once; the database and the engine live in
:mod:`.service`. The CLI, the service and the evaluation all run messages through :class:`Scorer`, so
what is evaluated is what is served.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from safeguard.content import ChatMessage
from safeguard.detectors.grooming.encoder import HashedNgramEncoder, StageSimilarity, USEEncoder
from safeguard.detectors.grooming.features import (
    MINOR_BANDS,
    SEXTORTION_QUOTING,
    SEXTORTION_THREAT,
    SEXTORTION_THREAT_WITH_INDICATOR,
    SIM_FLOOR,
    SIM_SEEN,
    features,
    stage_scores,
)
from safeguard.detectors.grooming.indicators import STAGES, find_hits, normalise
from safeguard.detectors.grooming.model import GroomingModel
from safeguard.detectors.grooming.stageclf import BinaryHead, ExemplarAffinity, StageClassifier, combine
from safeguard.detectors.grooming.state import ConversationState, UserState

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_MODEL = DATA_DIR / "model.json"
DEFAULT_EXEMPLARS = DATA_DIR / "exemplars.json"
AGE_BANDS = ("child", "teen", "adult", "unknown")
SEMANTIC_EVIDENCE = 0.7  # a stage head's probability that makes a message evidence (``<stage>.semantic``)


@dataclass(frozen=True)
class Analysis:
    """What one message shows, before any state: indicator hits and per-stage similarity."""

    indicators: tuple[str, ...]
    sims: np.ndarray  # [len(STAGES)]
    quote: float = 0.0  # probability that the message talks about grooming (reports, quotes, warns)
    line: float = 0.0  # probability that the message is a groomer's tactic in a grooming conversation
    threat: float = 0.0  # probability that the message is a groomer's pressure or threat (sextortion)


#: the scorer reads a chat message as a ``message`` content carries it (its territory and account details
#: are the service's, unused here)
Message = ChatMessage


@dataclass(frozen=True)
class Step:
    """The result of one message: the sender's risk here, conversation risk, and what explains it."""

    message_id: str
    sender_id: str
    indicators: tuple[str, ...]
    sender_conversation_risk: float
    conversation_risk: float
    sender_risk: float
    stage_scores: dict[str, float]
    top_stage: str | None
    contributions: dict[str, float]
    semantic: tuple[str, ...] = ()  # stage-head evidence this message added (``<stage>.semantic``)


def make_encoder(spec: dict[str, Any]) -> Any:
    if spec.get("name") == "use-multilingual":
        return USEEncoder()
    return HashedNgramEncoder(dim=int(spec.get("dim", 4096)), idf=spec.get("idf"))


class Scorer:
    def __init__(self, model: GroomingModel, exemplars: dict[str, list[str]]) -> None:
        self.model = model
        self.encoder = make_encoder(model.encoder)
        clf = model.encoder.get("stage_classifier")
        # With a stage classifier, its probabilities are the stage evidence; else exemplar similarity.
        self.stage_clf = StageClassifier.from_dict(clf) if clf else None
        aff = model.encoder.get("affinity")
        self.affinity = ExemplarAffinity.from_dict(aff) if aff else None
        self.combine = str(model.encoder.get("combine", "clf"))
        qh = model.encoder.get("quote_head")
        self.quote_head = BinaryHead.from_dict(qh) if qh else None
        lh = model.encoder.get("line_head")
        self.line_head = BinaryHead.from_dict(lh) if lh else None
        th = model.encoder.get("threat_head")
        self.threat_head = BinaryHead.from_dict(th) if th else None
        self.similarity = StageSimilarity(self.encoder, {} if self.stage_clf else exemplars)

    @classmethod
    def load(cls, model_path: str | Path | None = None, exemplars_path: str | Path | None = None) -> Scorer:
        model = GroomingModel.load(model_path or DEFAULT_MODEL)
        ex = json.loads(Path(exemplars_path or DEFAULT_EXEMPLARS).read_text(encoding="utf-8"))
        return cls(model, ex["stages"])

    def analyse(self, texts: Sequence[str]) -> list[Analysis]:
        """Batch analysis: patterns per message, one matrix product for all similarities."""
        quotes = np.zeros(len(texts), dtype=np.float32)
        lines = np.zeros(len(texts), dtype=np.float32)
        threats = np.zeros(len(texts), dtype=np.float32)
        if self.stage_clf is not None:
            emb = self.encoder.encode(list(texts))
            aff = self.affinity.predict(emb) if self.affinity is not None and self.combine != "clf" else None
            sims = combine(self.stage_clf.predict(emb), aff, self.combine)
            if self.quote_head is not None:
                quotes = self.quote_head.predict(emb)
            if self.line_head is not None:
                lines = self.line_head.predict(emb)
            if self.threat_head is not None:
                threats = self.threat_head.predict(emb)
        else:
            sims = self.similarity.scores(list(texts))
        out = []
        for i, t in enumerate(texts):
            hits = find_hits(normalise(t), normalised=True)
            out.append(
                Analysis(
                    tuple(f"{h.stage}.{h.indicator}" for h in hits),
                    sims[i],
                    float(quotes[i]),
                    float(lines[i]),
                    float(threats[i]),
                )
            )
        return out

    def apply(
        self,
        conv: ConversationState,
        user: UserState,
        conversation_id: str,
        msg: Message,
        analysis: Analysis,
        *,
        snippet: bool = True,
    ) -> Step:
        """Fold one analysed message into the conversation and sender state (O(1))."""
        st = conv.sender(msg.sender_id)
        st.n += 1
        conv.n += 1
        conv.last_at = msg.sent_at
        conv.last_id = msg.message_id
        st.band = msg.sender_band
        if msg.account_age_days is not None:
            st.acct = msg.account_age_days
        st.prior = st.prior or msg.prior_contact
        minors = [rid for rid, band in msg.recipients if band in MINOR_BANDS]
        if minors:
            st.to_minor = True
            for rid in minors:
                user.note_minor(rid)
        stage_idx = {s: i for i, s in enumerate(STAGES)}
        for ind in analysis.indicators:
            i = stage_idx[ind.split(".", 1)[0]]
            st.hits[i] = min(st.hits[i] + 1, 255)
            if st.first[i] < 0:
                st.first[i] = st.n
        for i, v in enumerate(analysis.sims):
            if v > st.sim[i]:
                st.sim[i] = float(v)
            if v >= SIM_SEEN and st.first[i] < 0:
                st.first[i] = st.n
        strength = max(0.0, float(np.max(analysis.sims)) - SIM_FLOOR) if len(analysis.sims) else 0.0
        if strength > 0.0:
            st.q += analysis.quote * strength
            st.qw += strength
        st.g = max(st.g, analysis.line)
        st.t = max(st.t, analysis.threat)
        st.gs += analysis.line
        x = features(st, len(user.minors) if st.band != "child" else 0)
        risk = float(self.model.predict(x))
        st.risk = risk
        conv_risk = max(s.risk for s in conv.senders.values())
        user.set_risk(conversation_id, risk)
        # Stage-head evidence (classifier models): a stage shown with probability >= SEMANTIC_EVIDENCE
        # by a message that does not read as quoting or reporting is evidence too, named "<stage>.semantic".
        semantic = []
        if self.stage_clf is not None and analysis.quote < SEXTORTION_QUOTING:
            semantic = [f"{STAGES[i]}.semantic" for i, v in enumerate(analysis.sims) if v >= SEMANTIC_EVIDENCE]
            threat = analysis.threat >= SEXTORTION_THREAT or (
                analysis.threat >= SEXTORTION_THREAT_WITH_INDICATOR
                and "pressure.threat_to_share" in analysis.indicators
            )
            if threat and "pressure.semantic" not in semantic:
                semantic.append("pressure.semantic")
        if analysis.indicators or semantic:
            conv.add_evidence(
                {
                    "message_id": msg.message_id,
                    "sender_id": msg.sender_id,
                    "indicators": [*analysis.indicators, *semantic],
                    "snippet": msg.text if snippet else "",
                }
            )
        contrib = self.model.contributions(x)
        stage_contrib = {s: contrib[f"hit_{s}"] + contrib[f"sim_{s}"] for s in STAGES}
        best = max(stage_contrib, key=lambda s: stage_contrib[s])
        top = best if stage_contrib[best] > 0 else None
        if conv.alerted_at is None and conv_risk >= self.model.threshold:
            conv.alerted_at = conv.n
        return Step(
            message_id=msg.message_id,
            sender_id=msg.sender_id,
            indicators=analysis.indicators,
            sender_conversation_risk=risk,
            conversation_risk=conv_risk,
            sender_risk=user.risk(),
            stage_scores=stage_scores(st),
            top_stage=top,
            contributions=contrib,
            semantic=tuple(semantic),
        )


@lru_cache(maxsize=1)
def default_scorer() -> Scorer:
    """The packaged model, loaded once per process."""
    return Scorer.load()
