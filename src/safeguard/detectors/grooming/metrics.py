"""Evaluation measures: precision, recall, F-beta, and early-detection latency.

Latency-weighted F (Losada & Crestani's ERDE family, as used for grooming by Vogt et al. 2021,
"Early Detection of Sexual Predators in Chats"): each true positive detected after ``k`` messages gets
a penalty ``-1 + 2 / (1 + exp(-p (k - 1)))`` (0 at the first message, approaching 1 later);
``speed = 1 - median(penalties)`` and ``F_latency = F1 * speed``. ``p`` defaults to the value that
gives a penalty of 0.5 at the median length of the positive conversations, ``ln 3 / (median - 1)``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Scores:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    def f(self, beta: float = 1.0) -> float:
        p, r = self.precision, self.recall
        b2 = beta * beta
        return (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f(1.0), 4),
            "f0.5": round(self.f(0.5), 4),
        }


def confusion(y_true: Sequence[int], y_pred: Sequence[int]) -> Scores:
    tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t and p)
    fp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if not t and p)
    fn = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t and not p)
    return Scores(tp, fp, fn, len(y_true) - tp - fp - fn)


def set_scores(predicted: set[str], actual: set[str], universe: set[str]) -> Scores:
    """Author-level scores (the PAN 2012 protocol): predicted and actual predator-id sets."""
    tp = len(predicted & actual)
    fp = len(predicted - actual)
    fn = len(actual - predicted)
    return Scores(tp, fp, fn, len(universe) - tp - fp - fn)


def latency_penalty(k: int, p: float) -> float:
    return -1.0 + 2.0 / (1.0 + math.exp(-p * (k - 1)))


def default_p(positive_lengths: Sequence[int]) -> float:
    med = statistics.median(positive_lengths) if positive_lengths else 2
    return math.log(3) / max(1.0, med - 1)


def f_latency(scores: Scores, delays: Sequence[int], p: float) -> tuple[float, float]:
    """(speed, F_latency) from the message counts at which true positives were flagged."""
    if not delays:
        return 0.0, 0.0
    speed = 1.0 - statistics.median(latency_penalty(k, p) for k in delays)
    return speed, scores.f(1.0) * speed
