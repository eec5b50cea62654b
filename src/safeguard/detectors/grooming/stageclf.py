"""Per-message stage evidence from meaning: one-vs-rest logistic regression over USE embeddings.

Trained on the messages the corpus authors tagged with a stage (and the template corpus's tagged
lines); untagged messages are the negatives of every stage. Its per-stage probabilities fill the
sender state's ``sim`` slots (a running maximum per stage), so the state keeps its size. Stored as
JSON inside the model file (weights rounded to 5 decimals), never pickled.
"""

from __future__ import annotations

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


def fit_stage_classifier(emb: np.ndarray, tags: Sequence[str | None], *, l2: float = 1.0) -> StageClassifier:
    """One L2-regularised logistic regression per stage (its tag against every other message)."""
    w = np.zeros((len(STAGES), emb.shape[1]))
    b = np.zeros(len(STAGES))
    x = emb.astype(np.float64)
    for i, s in enumerate(STAGES):
        y = np.asarray([t == s for t in tags], dtype=np.float64)
        if 0 < y.sum() < len(y):
            w[i], b[i] = fit_logistic(x, y, l2=l2, iters=25)
        else:
            b[i] = -10.0
    return StageClassifier(w, b)
