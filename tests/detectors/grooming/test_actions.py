"""The child-facing safety message, contact restriction, and the default policy's grooming rules."""

from __future__ import annotations

from safeguard import registry
from safeguard.actions.safety_message import TEMPLATES, render_safety_message
from safeguard.content import ContentKind, Finding
from safeguard.policy import evaluate, load_policy


def test_safety_message_locales_and_fallback() -> None:
    assert set(TEMPLATES) >= {"en", "es", "fr", "de"}
    en = render_safety_message("en-GB")
    assert en["locale"] == "en" and "not your fault" in en["text"] and "CEOP" in en["text"]
    assert render_safety_message("fr_CA")["locale"] == "fr"
    assert render_safety_message("pt")["locale"] == "en"
    custom = render_safety_message("pt", {"templates": {"pt": "Não é culpa tua."}})
    assert custom == {"locale": "pt", "template": "grooming_safety/1", "text": "Não é culpa tua."}


def test_actions_are_registered_platform_actions() -> None:
    for name in ("safety_message", "restrict_contact"):
        cls = registry.actions.get(name)
        assert cls.performed_by == "platform"


def _f(kind: str, score: float, confidence: str = "high") -> Finding:
    return Finding(detector="grooming", kind=kind, score=score, category="secrecy", confidence=confidence)


def test_default_policy_grooming_rules() -> None:
    p = load_policy()
    low = evaluate(p, [_f("grooming_risk", 0.3, "low")], ContentKind.MESSAGE)
    assert low.verdict.value == "allow" and not low.actions
    high = evaluate(p, [_f("grooming_risk", 0.9)], ContentKind.MESSAGE)
    assert high.verdict.value == "review"
    assert [a.name for a in high.actions] == ["case", "safety_message", "webhook"]
    assert high.actions[0].params["priority"] == 1
    very = evaluate(p, [_f("grooming_risk", 0.995)], ContentKind.MESSAGE)
    assert "restrict_contact" in [a.name for a in very.actions]
    sx = evaluate(p, [_f("grooming_risk", 0.9), _f("sextortion", 0.9)], ContentKind.MESSAGE)
    assert sx.reasons[0] == "grooming-sextortion"
    assert next(a for a in sx.actions if a.name == "case").params["priority"] == 0
