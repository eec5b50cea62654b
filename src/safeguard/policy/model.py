"""The rule model and its evaluation. Pure: no IO, no globals.

A rule fires when at least one finding satisfies every condition in its ``when`` block (each
condition takes one value or a list of allowed values). The decision's verdict is the strictest verdict
among the rules that fired (``block`` > ``review`` > ``allow``), or ``default_verdict`` when none did;
its actions are the union of the fired rules' actions, in rule order, each name once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from safeguard.content import Action, ContentKind, Finding, Verdict

Scalar = str | int | float | bool


class When(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detector: str | list[str] | None = None
    kind: str | list[str] | None = None
    bank: str | list[str] | None = None
    bank_kind: str | list[str] | None = None
    category: str | list[str] | None = None
    confidence: Literal["high", "low"] | list[Literal["high", "low"]] | None = None
    signal_type: str | list[str] | None = None
    content_kind: str | list[str] | None = None
    max_distance: int | None = Field(default=None, ge=0)
    min_score: float | None = None

    def matches(self, f: Finding, content_kind: ContentKind) -> bool:
        checks: list[tuple[Any, Any]] = [
            (self.detector, f.detector),
            (self.kind, f.kind),
            (self.bank, f.bank),
            (self.bank_kind, f.bank_kind),
            (self.category, f.category),
            (self.confidence, f.confidence),
            (self.signal_type, f.signal_type),
            (self.content_kind, content_kind.value),
        ]
        for want, got in checks:
            if want is None:
                continue
            allowed = want if isinstance(want, list) else [want]
            if got not in allowed:
                return False
        if self.max_distance is not None and (f.distance is None or f.distance > self.max_distance):
            return False
        return not (self.min_score is not None and (f.score is None or f.score < self.min_score))


class ActionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    when: When
    verdict: Verdict
    actions: list[ActionSpec] = Field(default_factory=list)

    @field_validator("actions", mode="before")
    @classmethod
    def _names_to_specs(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": a} if isinstance(a, str) else a for a in v]
        return v


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1)
    description: str = ""
    default_verdict: Verdict = Verdict.ALLOW
    rules: list[Rule]

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for r in rules:
            if r.name in seen:
                raise ValueError(f"duplicate rule name {r.name!r}")
            seen.add(r.name)
        return rules


@dataclass(frozen=True)
class PolicyOutcome:
    verdict: Verdict
    actions: tuple[Action, ...]
    reasons: tuple[str, ...]


def with_default_rules(policy: Policy, rules: list[Rule]) -> Policy:
    """``policy`` with ``rules`` appended, except those whose name the policy already uses (its own wins)."""
    names = {r.name for r in policy.rules}
    extra = [r for r in rules if r.name not in names]
    return policy.model_copy(update={"rules": [*policy.rules, *extra]}) if extra else policy


def evaluate(policy: Policy, findings: list[Finding] | tuple[Finding, ...], content_kind: ContentKind) -> PolicyOutcome:
    verdict = policy.default_verdict
    actions: dict[str, Action] = {}
    reasons: list[str] = []
    for rule in policy.rules:
        if any(rule.when.matches(f, content_kind) for f in findings):
            reasons.append(rule.name)
            if rule.verdict.severity > verdict.severity:
                verdict = rule.verdict
            for spec in rule.actions:
                actions.setdefault(spec.name, Action(spec.name, dict(spec.params)))
    return PolicyOutcome(verdict, tuple(actions.values()), tuple(reasons))
