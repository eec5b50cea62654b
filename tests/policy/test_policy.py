from __future__ import annotations

import pytest

from safeguard.content import ContentKind, Finding, Verdict
from safeguard.errors import ConfigError
from safeguard.policy import evaluate, load_policy, parse_policy


def f(**kw: object) -> Finding:
    base: dict[str, object] = {
        "detector": "hash_match",
        "kind": "hash_match",
        "bank": "b",
        "bank_kind": "csam",
        "distance": 0,
        "confidence": "high",
    }
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def test_default_policy_loads_and_decides() -> None:
    p = load_policy()
    assert evaluate(p, [], ContentKind.IMAGE).verdict is Verdict.ALLOW
    out = evaluate(p, [f()], ContentKind.IMAGE)
    assert out.verdict is Verdict.BLOCK and out.reasons == ("known-csam",)
    assert [a.name for a in out.actions] == ["block", "case", "preserve", "webhook"]
    assert out.actions[1].params == {"priority": 0}
    assert evaluate(p, [f(confidence="low")], ContentKind.IMAGE).verdict is Verdict.REVIEW
    assert evaluate(p, [f(bank_kind="ncii")], ContentKind.IMAGE).verdict is Verdict.REVIEW


def test_strictest_verdict_wins_and_actions_union() -> None:
    p = load_policy()
    out = evaluate(p, [f(confidence="low"), f(), f(bank_kind="other")], ContentKind.IMAGE)
    assert out.verdict is Verdict.BLOCK
    assert out.reasons == ("known-csam", "possible-csam", "other-bank-match")
    assert [a.name for a in out.actions] == ["block", "case", "preserve", "webhook"]


def test_conditions_lists_and_bounds() -> None:
    p = parse_policy("""
version: t1
rules:
  - name: close-pdq
    when: {signal_type: [pdq], max_distance: 10, category: [A1, A2]}
    verdict: block
  - name: scored
    when: {min_score: 0.9}
    verdict: review
""")
    assert evaluate(p, [f(signal_type="pdq", distance=10, category="A1")], ContentKind.IMAGE).verdict is Verdict.BLOCK
    assert evaluate(p, [f(signal_type="pdq", distance=11, category="A1")], ContentKind.IMAGE).verdict is Verdict.ALLOW
    assert evaluate(p, [f(signal_type="pdq", distance=1, category="B1")], ContentKind.IMAGE).verdict is Verdict.ALLOW
    assert evaluate(p, [f(score=0.95)], ContentKind.IMAGE).verdict is Verdict.REVIEW
    assert evaluate(p, [f(score=None)], ContentKind.IMAGE).verdict is Verdict.ALLOW


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("rules: []", "version"),
        ("version: 1\nrules:\n  - name: a\n    when: {colour: red}\n    verdict: block", "colour"),
        ("version: 1\nrules:\n  - name: a\n    when: {}\n    verdict: explode", "verdict"),
        ("version: 1\nrules:\n  - name: a\n    when: {}\n    verdict: block\n    actions: [launch]", "unknown action"),
        (
            "version: 1\nrules:\n  - {name: a, when: {}, verdict: block}\n  - {name: a, when: {}, verdict: block}",
            "duplicate",
        ),
        ("version: [unclosed", "YAML"),
        ("- just a list", "mapping"),
    ],
)
def test_invalid_policies_are_explained(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_policy(text, origin="p.yaml")
    assert needle in e.value.message and "p.yaml" in e.value.message
    assert e.value.code == "invalid_policy"
