"""A calibrated logistic-regression model over the conversation features, stored as JSON (never pickle).

Logistic regression because a moderator can read it: each feature's weight times its value is its
contribution to the risk, which is how the finding names its top stage. Trained with L2-regularised
Newton steps in numpy (no scikit-learn needed), then Platt-calibrated on a separate calibration split
so that "0.8" means roughly "8 in 10 conversations scored like this were grooming" *on the corpus it
was calibrated on* (see docs/grooming.md for what that does and does not mean).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from safeguard.detectors.grooming.features import FEATURES
from safeguard.errors import ConfigError


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 1.0,
    iters: int = 50,
    sample_weight: np.ndarray | None = None,
    init: tuple[np.ndarray, float] | None = None,
) -> tuple[np.ndarray, float]:
    """Newton-Raphson (IRLS) for L2-regularised logistic regression; returns (weights, bias).

    ``init``: a starting point (the problem is strictly convex, so the optimum does not depend on it;
    a close one, such as the same head fitted on most of the same rows, saves most of the steps).
    Each step is damped (halved until the penalised loss decreases): a full Newton step from a start
    fitted on other rows can overshoot and, without damping, 25 steps ended far from the optimum (a
    leave-one-author-out fold's stage heads warm-started from another fold's: stage agreement 0.28
    against 0.77 fitted from zero). Wide problems (the 512-dimensional embedding heads) form the
    Hessian in float32 and stop once no weight moves by 1e-6 (they are stored to 5 decimals); the
    gradient stays float64, so the fixed point is the same."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    wide = d > 64
    xh = xb.astype(np.float32) if wide else xb
    tol = 1e-6 if wide else 1e-8
    w = np.zeros(d + 1) if init is None else np.append(np.asarray(init[0], dtype=np.float64), init[1])
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0  # no penalty on the bias
    sw = np.ones(n) if sample_weight is None else sample_weight

    def loss(z: np.ndarray, w: np.ndarray) -> float:
        return float(np.sum(sw * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(reg * w * w))

    z = xb @ w
    current = loss(z, w)
    for _ in range(iters):
        p = _sigmoid(z)
        grad = xb.T @ (sw * (p - y)) + reg * w
        s = (sw * p * (1 - p)).astype(xh.dtype)
        h = (xh * s[:, None]).T @ xh
        step = np.linalg.solve(h.astype(np.float64) + np.diag(reg) + 1e-9 * np.eye(d + 1), grad)
        t = 1.0
        for _half in range(30):
            w_new = w - t * step
            z_new = xb @ w_new
            new = loss(z_new, w_new)
            if new <= current + 1e-12 * abs(current):
                break
            t *= 0.5
        w, z, current = w_new, z_new, new
        if np.abs(t * step).max() < tol:
            break
    return w[:-1], float(w[-1])


def fit_monotone(x: np.ndarray, y: np.ndarray, nonneg: list[int], *, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Logistic regression whose weights on ``nonneg`` features are >= 0 (an active-set loop).

    Evidence of a grooming stage must never *lower* the risk: a moderator could not trust a score
    that drops when a "meet me" follows "our secret". Features that come out negative are fixed at
    zero and the rest refitted until none is negative.
    """
    active = list(range(x.shape[1]))
    while True:
        w_act, b = fit_logistic(x[:, active], y, l2=l2)
        bad = [a for a, w in zip(active, w_act, strict=True) if a in nonneg and w < 0]
        if not bad:
            w = np.zeros(x.shape[1])
            w[active] = w_act
            return w, b
        active = [a for a in active if a not in bad]


@dataclass
class GroomingModel:
    weights: np.ndarray
    bias: float
    platt_a: float = 1.0
    platt_b: float = 0.0
    threshold: float = 0.5
    features: tuple[str, ...] = FEATURES
    meta: dict[str, Any] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=dict)  # {"name": ..., "dim": ..., "idf": [...]}

    def __post_init__(self) -> None:
        # A model names the features it uses; rows passed in are always the full FEATURES vector, of
        # which the model takes its own columns (so the v1 model, trained on the first 26, still runs).
        self._cols = np.asarray([FEATURES.index(f) for f in self.features], dtype=np.int64)
        self._all = tuple(self.features) == FEATURES

    def _take(self, x: np.ndarray) -> np.ndarray:
        return x if self._all else x[..., self._cols]

    def logit(self, x: np.ndarray) -> np.ndarray:
        return self._take(x) @ self.weights + self.bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probability for each row (or a single row)."""
        return _sigmoid(self.platt_a * self.logit(x) + self.platt_b)

    def contributions(self, x: np.ndarray) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.features, self.weights * self._take(x), strict=True)}

    def calibrate(self, x: np.ndarray, y: np.ndarray) -> None:
        z = self.logit(x)[:, None]
        a, b = fit_logistic(z, y, l2=1e-3)
        self.platt_a, self.platt_b = float(a[0]), b

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "safeguard.grooming.model/1",
            "features": list(self.features),
            "weights": [round(float(w), 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "platt": {"a": round(self.platt_a, 6), "b": round(self.platt_b, 6)},
            "threshold": self.threshold,
            "meta": self.meta,
            "encoder": self.encoder,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GroomingModel:
        if d.get("format") != "safeguard.grooming.model/1":
            raise ConfigError("not a Safeguard grooming model file", code="invalid_grooming_model")
        feats = tuple(d["features"])
        if not set(feats) <= set(FEATURES):
            raise ConfigError(
                "grooming model was trained on different features; retrain with `safeguard grooming train`",
                code="invalid_grooming_model",
            )
        return cls(
            weights=np.asarray(d["weights"], dtype=np.float64),
            bias=float(d["bias"]),
            platt_a=float(d["platt"]["a"]),
            platt_b=float(d["platt"]["b"]),
            threshold=float(d.get("threshold", 0.5)),
            features=feats,
            meta=dict(d.get("meta", {})),
            encoder=dict(d.get("encoder", {})),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> GroomingModel:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot load grooming model {path}: {exc}", code="invalid_grooming_model") from exc
