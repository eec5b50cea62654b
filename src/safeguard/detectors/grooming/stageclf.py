"""Per-message stage evidence from meaning: one-vs-rest logistic regression over USE embeddings.

Trained on the messages the corpus authors tagged with a stage (and the template corpus's tagged
lines); untagged messages are the negatives of every stage. Its per-stage probabilities fill the
sender state's ``sim`` slots (a running maximum per stage), so the state keeps its size. Stored as
JSON inside the model file (weights rounded to 5 decimals), never pickled.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from safeguard.detectors.grooming.indicators import STAGES
from safeguard.detectors.grooming.model import _sigmoid, fit_logistic


@dataclass
class StageClassifier:
    weights: np.ndarray  # [len(STAGES), dim]
    bias: np.ndarray  # [len(STAGES)]

    def predict(self, emb: np.ndarray) -> np.ndarray:
        """``[n, len(STAGES)]`` probability that each message shows each stage."""
        if not len(emb):
            return np.zeros((0, len(STAGES)), dtype=np.float32)
        return _sigmoid(emb.astype(np.float64) @ self.weights.T + self.bias).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": list(STAGES),
            "weights": [[round(float(v), 5) for v in row] for row in self.weights],
            "bias": [round(float(v), 5) for v in self.bias],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageClassifier:
        if list(d.get("stages", [])) != list(STAGES):
            raise ValueError("the stage classifier was trained on different stages")
        return cls(np.asarray(d["weights"], dtype=np.float64), np.asarray(d["bias"], dtype=np.float64))


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    """Sample weights under which the positives and the negatives of ``y`` (both present) weigh half each."""
    pos = y.sum()
    return np.where(y > 0, 0.5 * len(y) / pos, 0.5 * len(y) / (len(y) - pos))


def fit_stage_classifier(
    emb: np.ndarray,
    tags: Sequence[str | None],
    *,
    l2: float = 1.0,
    balanced: bool = False,
    init: StageClassifier | None = None,
) -> StageClassifier:
    """One L2-regularised logistic regression per stage (its tag against every other message).

    ``balanced``: a stage's messages weigh as much, in all, as the rest (each stage is a few percent
    of the messages, so unweighted probabilities rarely reach 0.5 even on clear lines)."""
    w = np.zeros((len(STAGES), emb.shape[1]))
    b = np.zeros(len(STAGES))
    x = emb.astype(np.float64)
    for i, s in enumerate(STAGES):
        y = np.asarray([t == s for t in tags], dtype=np.float64)
        if 0 < y.sum() < len(y):
            sw = _balanced_weights(y) if balanced else None
            start = (init.weights[i], float(init.bias[i])) if init is not None else None
            w[i], b[i] = fit_logistic(x, y, l2=l2, iters=25, sample_weight=sw, init=start)
        else:
            b[i] = -10.0
    return StageClassifier(w, b)


# Conversation kinds (the authors' ``kind``) whose every message is talk *about* grooming rather than
# grooming: a child or parent reporting a contact, adults discussing warning signs, safety lessons, a
# parent's or sibling's advice or warning to a child (model v6 adds "advice", "warning" and "discuss":
# the authors name these kinds freely, e.g. ``benign-sibling-advice``, ``benign-adults-discussing``)
QUOTING_KINDS = ("report", "safety", "lesson", "moderation", "discuss", "advice", "warning")


def is_quoting_kind(kind: str | None) -> bool:
    if not kind:
        return False
    return kind.startswith("benign") and any(k in kind for k in QUOTING_KINDS)


@dataclass
class BinaryHead:
    """One logistic regression over USE embeddings. Two are trained on the authors' data:

    - the *quote* head, P(the message talks about grooming: reports, quotes, warns): every message of a
      reporting / safety-talk / lesson conversation is a positive, every other message a negative;
    - the *line* head, P(the message is a groomer's tactic in a grooming conversation): the stage-tagged
      messages of the groomer are positives, everything else (including stage-like lines of benign
      conversations: a surprise party's "don't tell mum", a lesson quoting a groomer) negatives.

    Learned, not phrase lists."""

    weights: np.ndarray  # [dim]
    bias: float

    def predict(self, emb: np.ndarray) -> np.ndarray:
        if not len(emb):
            return np.zeros(0, dtype=np.float32)
        return _sigmoid(emb.astype(np.float64) @ self.weights + self.bias).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"weights": [round(float(v), 5) for v in self.weights], "bias": round(self.bias, 5)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BinaryHead:
        return cls(np.asarray(d["weights"], dtype=np.float64), float(d["bias"]))


QuoteHead = BinaryHead


def fit_binary_head(
    emb: np.ndarray,
    positive: Sequence[bool],
    *,
    l2: float = 1.0,
    init: BinaryHead | None = None,
    balanced: bool = False,
) -> BinaryHead:
    """``balanced``: positives and negatives weigh half each (a probability that separates, not the base rate)."""
    y = np.asarray(positive, dtype=np.float64)
    start = (init.weights, init.bias) if init is not None else None
    sw = _balanced_weights(y) if balanced and 0 < y.sum() < len(y) else None
    w, b = fit_logistic(emb.astype(np.float64), y, l2=l2, iters=25, sample_weight=sw, init=start)
    return BinaryHead(w, b)


fit_quote_head = fit_binary_head


@dataclass
class ExemplarAffinity:
    """Exemplar affinity: the stage tags of a message's ``k`` nearest labelled training messages.

    The stored messages are the training authors' messages (tagged or not), as int8-quantised USE
    embeddings (base64 in the model JSON, no text). A message's affinity to a stage is the share of its
    neighbours' similarity weight (cosine to the power ``power``) carried by messages tagged with that
    stage; untagged neighbours pull every stage down."""

    emb: np.ndarray  # [n, dim] float32, rows L2-normalised
    labels: np.ndarray  # [n] stage index, -1 for untagged
    k: int = 12
    power: float = 4.0

    def predict(self, emb: np.ndarray) -> np.ndarray:
        out = np.zeros((len(emb), len(STAGES)), dtype=np.float32)
        if not len(emb) or not len(self.emb):
            return out
        sims = emb.astype(np.float32) @ self.emb.T
        k = min(self.k, sims.shape[1])
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.maximum(np.take_along_axis(sims, idx, axis=1), 0.0) ** self.power
        lab = self.labels[idx]
        total = top.sum(axis=1)
        total[total == 0] = 1.0
        for s in range(len(STAGES)):
            out[:, s] = (top * (lab == s)).sum(axis=1) / total
        return out

    def to_dict(self) -> dict[str, Any]:
        scale = np.maximum(np.abs(self.emb).max(axis=1), 1e-9) / 127.0
        q = np.round(self.emb / scale[:, None]).astype(np.int8)
        return {
            "k": self.k,
            "power": self.power,
            "dim": int(self.emb.shape[1]),
            "labels": [int(v) for v in self.labels],
            "scale": [round(float(v), 7) for v in scale],
            "int8": base64.b64encode(q.tobytes()).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExemplarAffinity:
        labels = np.asarray(d["labels"], dtype=np.int64)
        q = np.frombuffer(base64.b64decode(d["int8"]), dtype=np.int8).reshape(len(labels), int(d["dim"]))
        emb = q.astype(np.float32) * np.asarray(d["scale"], dtype=np.float32)[:, None]
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
        return cls(np.ascontiguousarray(emb), labels, int(d.get("k", 12)), float(d.get("power", 4.0)))


def fit_affinity(emb: np.ndarray, tags: Sequence[str | None], *, k: int = 12, power: float = 4.0) -> ExemplarAffinity:
    labels = np.asarray([STAGES.index(t) if t else -1 for t in tags], dtype=np.int64)
    return ExemplarAffinity(np.ascontiguousarray(emb.astype(np.float32)), labels, k, power)


def combine(clf: np.ndarray, aff: np.ndarray | None, how: str) -> np.ndarray:
    """Stage evidence from the classifier and the exemplar affinity: ``clf``, ``knn``, ``mean``, ``max``."""
    if aff is None or how == "clf":
        return clf
    if how == "knn":
        return aff
    if how == "max":
        return np.maximum(clf, aff)
    return ((clf + aff) / 2.0).astype(np.float32)
