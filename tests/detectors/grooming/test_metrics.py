"""Precision/recall/F-beta and the latency-weighted F."""

from __future__ import annotations

import math

from safeguard.detectors.grooming.metrics import (
    confusion,
    default_p,
    f_latency,
    latency_penalty,
    set_scores,
)


def test_confusion_and_f_beta() -> None:
    s = confusion([1, 1, 1, 0, 0], [1, 1, 0, 1, 0])
    assert (s.tp, s.fp, s.fn, s.tn) == (2, 1, 1, 1)
    assert math.isclose(s.precision, 2 / 3) and math.isclose(s.recall, 2 / 3)
    assert math.isclose(s.f(0.5), 2 / 3)


def test_author_level_sets() -> None:
    s = set_scores({"a", "b"}, {"b", "c"}, {"a", "b", "c", "d"})
    assert (s.tp, s.fp, s.fn, s.tn) == (1, 1, 1, 1)


def test_latency_penalty_shape() -> None:
    p = default_p([21, 21, 21])
    assert latency_penalty(1, p) == 0.0
    assert math.isclose(latency_penalty(21, p), 0.5, rel_tol=1e-9)
    assert latency_penalty(200, p) > 0.99


def test_f_latency_rewards_early_alerts() -> None:
    s = confusion([1, 1, 0], [1, 1, 0])
    p = default_p([10, 10])
    early, f_early = f_latency(s, [1, 2], p)
    late, f_late = f_latency(s, [9, 10], p)
    assert f_early > f_late and early > late
    assert f_latency(s, [], p) == (0.0, 0.0)
