"""Author-disjoint evaluation: leave one author out over independently written corpora.

For each author A of an ``authors`` corpus, a *system* is built from the other authors only (a system
that needs no training, such as the shipped model, is used as it is), its alert threshold is chosen
on a validation split of those training authors (never on A), and it is tested on every conversation
A wrote. Per fold and pooled over folds the report gives precision, recall, F0.5, ROC-AUC of the
conversation's peak risk, alerts in time (alert at or before the first message tagged ``explicit``,
over all grooming conversations), false alerts per 1,000 benign conversations, recall per language
and the agreement of each tagged message's top stage with the author's tag, with bootstrap 95%
confidence intervals over conversations (1,000 resamples, fixed seed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from safeguard.detectors.grooming.features import answering_report, sextortion_signal
from safeguard.detectors.grooming.indicators import STAGES
from safeguard.detectors.grooming.loaders import LoadedConversation
from safeguard.detectors.grooming.scorer import Analysis, Scorer
from safeguard.detectors.grooming.state import ConversationState, UserState
from safeguard.detectors.grooming.training import best_threshold

# a system: (training conversations, validation conversations) -> (scorer, alert threshold)
System = Callable[[list[LoadedConversation], list[LoadedConversation]], tuple[Scorer, float]]
VALIDATION_FRACTION = 0.25
BOOTSTRAP = 1000
STAGE_MIN = 0.5  # an exemplar similarity below this does not name a stage


@dataclass(frozen=True)
class ConvResult:
    id: str
    author: str
    language: str
    label: int
    score: float  # peak conversation risk
    alert: int | None  # 1-based message index of the first alert
    explicit_at: int | None
    stage_hits: int  # tagged messages whose top stage equals the tag
    stage_tagged: int
    kind: str = ""
    sextortion: bool = False  # the sextortion rule's evidence held for some sender at the end


def is_validation(c: LoadedConversation, fraction: float = VALIDATION_FRACTION) -> bool:
    return hashlib.sha256(c.id.encode()).digest()[0] < 256 * fraction


def message_stage(a: Analysis) -> str | None:
    """The stage a single message shows most: the strongest stage score when it reaches ``STAGE_MIN``
    (classifier probability or exemplar similarity), else the stage with most indicator hits."""
    if len(a.sims) and float(np.max(a.sims)) >= STAGE_MIN:
        return STAGES[int(np.argmax(a.sims))]
    counts = [0] * len(STAGES)
    for ind in a.indicators:
        counts[STAGES.index(ind.split(".", 1)[0])] += 1
    return STAGES[int(np.argmax(counts))] if any(counts) else None


def _sextortion_now(state: ConversationState, sender_id: str) -> bool:
    """Whether the service's sextortion rule would hold for this sender now (see service.findings)."""
    st = state.senders.get(sender_id)
    if st is None:
        return False
    inds = [i for e in state.evidence if e.get("sender_id") == sender_id for i in e["indicators"]]
    return any(i.startswith("pressure.") for i in inds) and sextortion_signal(
        st, "pressure.threat_to_share" in inds, answering_report(state.senders, sender_id)
    )


def run(scorer: Scorer, conv: LoadedConversation, threshold: float) -> ConvResult:
    """Replay one conversation. An alert is what the service raises: the risk reaching the threshold
    (``grooming_risk``, confidence high) or the sextortion rule's evidence holding (``sextortion``)."""
    state = ConversationState()
    users: dict[str, UserState] = {}
    risks: list[float] = []
    alert = None
    sext = False
    for i, (m, a) in enumerate(zip(conv.messages, scorer.analyse([m.text for m in conv.messages]), strict=True)):
        user = users.setdefault(m.sender_id, UserState())
        step = scorer.apply(state, user, conv.id, m.to_message(), a, snippet=False)
        risks.append(step.conversation_risk)
        now = _sextortion_now(state, m.sender_id)
        sext = sext or now
        if alert is None and (step.conversation_risk >= threshold or now):
            alert = i + 1
    tagged = [m for m in conv.messages if m.stage]
    hits = 0
    if tagged:
        for m, a in zip(tagged, scorer.analyse([m.text for m in tagged]), strict=True):
            hits += int(message_stage(a) == m.stage)
    return ConvResult(
        conv.id,
        conv.author or "",
        conv.language or "",
        int(bool(conv.label)),
        max(risks) if risks else 0.0,
        alert,
        conv.explicit_at,
        hits,
        len(tagged),
        conv.kind or "",
        sext,
    )


@dataclass(frozen=True)
class Trace:
    """One replayed conversation, enough to place its alert for any threshold without replaying it."""

    label: int
    explicit_at: int | None
    risks: tuple[float, ...]  # conversation risk after each message
    sextortion_at: int | None  # 1-based message index where the sextortion rule first held

    def alert(self, threshold: float) -> int | None:
        at = next((i + 1 for i, r in enumerate(self.risks) if r >= threshold), None)
        if self.sextortion_at is not None and (at is None or self.sextortion_at < at):
            return self.sextortion_at
        return at


def trace(scorer: Scorer, conv: LoadedConversation) -> Trace:
    state = ConversationState()
    users: dict[str, UserState] = {}
    risks: list[float] = []
    sext = None
    for i, (m, a) in enumerate(zip(conv.messages, scorer.analyse([m.text for m in conv.messages]), strict=True)):
        user = users.setdefault(m.sender_id, UserState())
        risks.append(scorer.apply(state, user, conv.id, m.to_message(), a, snippet=False).conversation_risk)
        if sext is None and _sextortion_now(state, m.sender_id):
            sext = i + 1
    return Trace(int(bool(conv.label)), conv.explicit_at, tuple(risks), sext)


IN_TIME_TARGET = 0.70  # issue 18: alerts before the first explicit request in >= 70% of grooming conversations
FALSE_ALERT_TARGET = 10.0  # ... and <= 10 false alerts per 1,000 benign conversations
# thresholds tried: up to 0.98 (at 0.99 the calibrated risk is thin: a clear escalation between parties
# of unknown age reached 0.984, and the development folds lost recall and timeliness there for nothing)
THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.20, 0.985, 0.01))


def threshold_measures(traces: Sequence[Trace], threshold: float) -> dict[str, float]:
    tp = fp = fn = in_time = 0
    for t in traces:
        at = t.alert(threshold)
        if t.label:
            tp += at is not None
            fn += at is None
            in_time += at is not None and (t.explicit_at is None or at <= t.explicit_at)
        else:
            fp += at is not None
    npos, nneg = tp + fn, sum(1 for t in traces if not t.label)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / npos if npos else 0.0
    return {
        "threshold": threshold,
        "f0.5": 1.25 * p * r / (0.25 * p + r) if p + r else 0.0,
        "precision": p,
        "recall": r,
        "in_time": in_time / npos if npos else 0.0,
        "false_alerts_per_1000_benign": 1000.0 * fp / nneg if nneg else 0.0,
    }


def choose_threshold(
    scorer: Scorer,
    convs: Sequence[LoadedConversation],
    *,
    min_in_time: float = IN_TIME_TARGET,
    max_false_alerts: float = FALSE_ALERT_TARGET,
) -> tuple[float, dict[str, Any]]:
    """The alert threshold with the best F0.5 on ``convs`` (a validation split) among those that keep
    alerts in time >= ``min_in_time`` and false alerts <= ``max_false_alerts`` per 1,000 benign.

    An alert is what the service raises (risk at the threshold, or the sextortion rule). When no
    threshold meets both, the one that misses them least (relative shortfalls summed) is taken, best
    F0.5 among equals; ``feasible`` in the returned report says which case it was."""
    return choose_from_traces(
        [trace(scorer, c) for c in convs], min_in_time=min_in_time, max_false_alerts=max_false_alerts
    )


def choose_from_traces(
    traces: Sequence[Trace], *, min_in_time: float = IN_TIME_TARGET, max_false_alerts: float = FALSE_ALERT_TARGET
) -> tuple[float, dict[str, Any]]:
    """:func:`choose_threshold` on conversations already replayed."""
    best: tuple[tuple[float, float, float], dict[str, float]] | None = None
    n_feasible = 0
    for thr in THRESHOLDS:
        m = threshold_measures(traces, thr)
        short = max(0.0, min_in_time - m["in_time"]) / min_in_time + max(
            0.0, m["false_alerts_per_1000_benign"] - max_false_alerts
        ) / max(max_false_alerts, 1.0)
        n_feasible += short == 0.0
        key = (-short, m["f0.5"], thr)
        if best is None or key > best[0]:
            best = (key, m)
    assert best is not None
    chosen = best[1]
    report = {
        "rule": f"best F0.5 with in time >= {min_in_time:.2f} and <= {max_false_alerts:g} false alerts per 1,000 benign",
        "feasible": n_feasible > 0,
        "feasible_thresholds": n_feasible,
        "validation_conversations": len(traces),
        **{k: round(v, 4) for k, v in chosen.items()},
    }
    return float(chosen["threshold"]), report


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties counted half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(gt / (len(pos) * len(neg)))


def measures(rs: Sequence[ConvResult]) -> dict[str, float]:
    y = np.asarray([r.label for r in rs])
    pred = np.asarray([r.alert is not None for r in rs])
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    npos, nneg = int((y == 1).sum()), int((y == 0).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f05 = 1.25 * p * r / (0.25 * p + r) if p + r else 0.0
    in_time = sum(
        1 for c in rs if c.label and c.alert is not None and (c.explicit_at is None or c.alert <= c.explicit_at)
    )
    tagged = sum(c.stage_tagged for c in rs)
    return {
        "precision": p,
        "recall": r,
        "f0.5": f05,
        "roc_auc": auc(y, np.asarray([c.score for c in rs])),
        "in_time": in_time / npos if npos else float("nan"),
        "false_alerts_per_1000_benign": 1000.0 * fp / nneg if nneg else float("nan"),
        "stage_agreement": sum(c.stage_hits for c in rs) / tagged if tagged else float("nan"),
    }


def with_ci(rs: Sequence[ConvResult], *, n: int = BOOTSTRAP, seed: int = 18) -> dict[str, Any]:
    """Point values, 95% bootstrap intervals (conversations resampled), counts and recall per language."""
    point = measures(rs)
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in point}
    idx = np.arange(len(rs))
    for _ in range(n):
        sample = [rs[i] for i in rng.choice(idx, size=len(rs), replace=True)]
        for k, v in measures(sample).items():
            if not np.isnan(v):
                boots[k].append(v)
    out: dict[str, Any] = {
        "conversations": len(rs),
        "grooming": sum(r.label for r in rs),
        "alerts": sum(r.alert is not None for r in rs),
    }
    for k, v in point.items():
        lo, hi = np.percentile(boots[k], [2.5, 97.5]) if boots[k] else (float("nan"), float("nan"))
        out[k] = {"value": round(v, 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}
    sext = [r for r in rs if r.kind == "sextortion"]
    benign = [r for r in rs if not r.label]
    out["sextortion_rule"] = {
        "sextortion_conversations": len(sext),
        "fired_on_sextortion": sum(r.sextortion for r in sext),
        "fired_on_other_grooming": sum(r.sextortion for r in rs if r.label and r.kind != "sextortion"),
        "fired_on_benign": sum(r.sextortion for r in benign),
        "benign": len(benign),
    }
    langs = sorted({r.language for r in rs})
    out["recall_by_language"] = {}
    for lang in langs:
        pos = [r for r in rs if r.language == lang and r.label]
        neg = [r for r in rs if r.language == lang and not r.label]
        out["recall_by_language"][lang] = {
            "grooming": len(pos),
            "recall": round(sum(r.alert is not None for r in pos) / len(pos), 4) if pos else None,
            "false_alerts": sum(r.alert is not None for r in neg),
            "benign": len(neg),
        }
    return out


def leave_one_author_out(
    convs: Sequence[LoadedConversation],
    systems: dict[str, System],
    *,
    bootstrap: int = BOOTSTRAP,
) -> dict[str, Any]:
    """Per system: each fold's report (threshold, measures) and the pooled report over all folds."""
    authors = sorted({c.author or "" for c in convs})
    if len(authors) < 2:
        from safeguard.errors import InvalidInput

        raise InvalidInput("leave-one-author-out needs at least two authors", code="corpus_too_small")
    report: dict[str, Any] = {"authors": authors, "systems": {}}
    for name, build in systems.items():
        folds: dict[str, Any] = {}
        pooled: list[ConvResult] = []
        for a, test, train, val in _author_folds(convs, authors):
            scorer, thr = build(train, val)
            rs = [run(scorer, c, thr) for c in test]
            pooled += rs
            folds[a] = {"threshold": thr, **with_ci(rs, n=bootstrap)}
            if "threshold_choice" in scorer.model.meta:
                folds[a]["threshold_choice"] = scorer.model.meta["threshold_choice"]
        report["systems"][name] = {"folds": folds, "pooled": with_ci(pooled, n=bootstrap)}
    return report


def _author_folds(
    convs: Sequence[LoadedConversation], authors: Sequence[str]
) -> Iterator[tuple[str, list[LoadedConversation], list[LoadedConversation], list[LoadedConversation]]]:
    """Per author: (author, its conversations, the other authors' training and validation splits)."""
    for a in authors:
        rest = [c for c in convs if c.author != a]
        yield (
            a,
            [c for c in convs if c.author == a],
            [c for c in rest if not is_validation(c)],
            [c for c in rest if is_validation(c)],
        )


def author_traces(convs: Sequence[LoadedConversation], build: System) -> tuple[list[Trace], list[ConvResult]]:
    """Every author's conversations replayed by a model built without that author (the leave-one-author-out
    folds): the traces, to place alerts at any threshold, and the results at each fold's own threshold.

    The shipped model's threshold is chosen on these traces (:func:`choose_from_traces`): out-of-author
    replays of every training conversation, four times the validation split and author-disjoint."""
    traces: list[Trace] = []
    results: list[ConvResult] = []
    for _a, test, train, val in _author_folds(convs, sorted({c.author or "" for c in convs})):
        scorer, thr = build(train, val)
        traces += [trace(scorer, c) for c in test]
        results += [run(scorer, c, thr) for c in test]
    return traces, results


def shipped(scorer: Scorer) -> System:
    """The given model as it is: no training, its own threshold (chosen before any author data)."""

    def build(_train: list[LoadedConversation], _val: list[LoadedConversation]) -> tuple[Scorer, float]:
        return scorer, scorer.model.threshold

    return build


def shipped_validated(scorer: Scorer) -> System:
    """The given model with its threshold re-chosen (best F0.5) on the fold's validation authors."""

    def build(_train: list[LoadedConversation], val: list[LoadedConversation]) -> tuple[Scorer, float]:
        return scorer, best_threshold(scorer, val)

    return build


def use_retrained(*, templates: int = 800, indicators: bool = True, recipe: Any = None) -> System:
    """The USE stage heads and conversation model, trained per fold on the training authors."""
    from safeguard.detectors.grooming.training import Recipe, fit_use_model

    rec = recipe if recipe is not None else Recipe(indicators=indicators)

    def build(train: list[LoadedConversation], val: list[LoadedConversation]) -> tuple[Scorer, float]:
        scorer, _info = fit_use_model(train, val, templates=templates, recipe=rec)
        return scorer, scorer.model.threshold

    return build
