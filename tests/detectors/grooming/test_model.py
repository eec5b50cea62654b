"""Model fitting, calibration, monotone weights and the JSON format."""

from __future__ import annotations

import numpy as np
import pytest

from safeguard.detectors.grooming.features import FEATURES
from safeguard.detectors.grooming.model import GroomingModel, fit_logistic, fit_monotone
from safeguard.detectors.grooming.scorer import DEFAULT_MODEL
from safeguard.errors import ConfigError


def _data(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((n, 3))
    y = (x[:, 0] + 0.2 * rng.standard_normal(n) > 0.5).astype(float)
    return x, y


def test_logistic_regression_learns_the_signal() -> None:
    x, y = _data()
    w, _ = fit_logistic(x, y, l2=0.1)
    assert w[0] > 3 and abs(w[1]) < 1.5 and abs(w[2]) < 1.5


def test_monotone_fit_has_no_negative_weights_where_asked() -> None:
    x, y = _data()
    x[:, 1] = 1 - x[:, 0]  # anti-correlated: an unconstrained fit gives it a negative weight
    w_free, _ = fit_logistic(x, y, l2=0.1)
    w, _ = fit_monotone(x, y, [1], l2=0.1)
    assert w_free[1] < 0 and w[1] == 0.0


def test_json_roundtrip_and_calibration() -> None:
    x, y = _data()
    w, b = fit_logistic(x, y)
    m = GroomingModel(weights=np.zeros(len(FEATURES)), bias=0.0)
    m.weights[:3], m.bias = w, b
    xf = np.zeros((len(y), len(FEATURES)))
    xf[:, :3] = x
    m.calibrate(xf, y)
    again = GroomingModel.from_dict(m.to_dict())
    assert np.allclose(again.predict(xf), m.predict(xf), atol=1e-4)
    p = m.predict(xf)
    assert abs(p.mean() - y.mean()) < 0.05  # calibrated on its own data: mean probability ≈ base rate


def test_shipped_model_loads_and_is_monotone_in_stage_evidence() -> None:
    m = GroomingModel.load(DEFAULT_MODEL)
    for f, w in zip(m.features, m.weights, strict=True):
        if f.startswith(("hit_", "sim_")):
            assert w >= 0, f
    assert 0 < m.threshold < 1
    assert m.meta["heldout"]["conversations"] > 0


def test_bad_model_files_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "m.json"
    p.write_text('{"format": "something else"}')
    with pytest.raises(ConfigError):
        GroomingModel.load(p)
    p.write_text("not json")
    with pytest.raises(ConfigError):
        GroomingModel.load(p)
    d = GroomingModel(weights=np.zeros(len(FEATURES)), bias=0.0).to_dict()
    d["features"] = ["other"]
    with pytest.raises(ConfigError):
        GroomingModel.from_dict(d)
