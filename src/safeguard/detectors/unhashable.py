"""Media that Safeguard recognised but could not hash perceptually: never a silent allow.

Exact hashes (SHA-256, MD5) only find byte-identical copies; a banked image re-encoded, resized or
re-saved in another format is found only by a perceptual hash (PDQ, vPDQ). Uploaded media for which
no perceptual signal came out (a type the signal types do not decode, a video whose stream yields no
frame) gets a finding of kind ``unhashable``, and the policy rule of the same name, added to every
policy from the setting ``SAFEGUARD_UNHASHABLE`` (``review`` by default, or ``allow`` or ``block``),
decides. The rule's name is the decision's reason either way, so an ``allow`` still records why.

A policy file with its own rule named ``unhashable`` replaces the built-in one (the file wins); any
other rule on ``kind: unhashable`` can only make the verdict stricter, as every rule can. Media Safeguard
does not recognise at all is refused with ``415 unsupported_media`` before this point.
"""

from __future__ import annotations

from safeguard.content import Finding, Verdict
from safeguard.detectors.base import Detector, ScanContext
from safeguard.errors import ConfigError
from safeguard.policy.model import ActionSpec, Rule, When
from safeguard.signals import get_signal_type

UNHASHABLE_CHOICES = ("review", "allow", "block")
_ACTIONS: dict[str, list[ActionSpec]] = {
    "allow": [],
    "review": [ActionSpec(name="case", params={"priority": 2}), ActionSpec(name="webhook")],
    "block": [ActionSpec(name="block"), ActionSpec(name="case", params={"priority": 1}), ActionSpec(name="webhook")],
}


def unhashable_rule(verdict: str) -> Rule:
    """The built-in policy rule for ``unhashable`` findings, with the operator's verdict."""
    if verdict not in UNHASHABLE_CHOICES:
        raise ConfigError(
            f"SAFEGUARD_UNHASHABLE must be one of {', '.join(UNHASHABLE_CHOICES)}, not {verdict!r}",
            code="invalid_setting",
        )
    return Rule(
        name="unhashable",
        description="Media recognised but not hashed perceptually (setting SAFEGUARD_UNHASHABLE).",
        when=When(kind="unhashable"),
        verdict=Verdict(verdict),
        actions=list(_ACTIONS[verdict]),
    )


class UnhashableDetector(Detector):
    name = "unhashable"
    quick = True

    def applies(self, ctx: ScanContext) -> bool:
        return ctx.media is not None and not any(get_signal_type(s.type).metric == "hamming" for s in ctx.signals)

    def detect(self, ctx: ScanContext) -> list[Finding]:
        assert ctx.media is not None
        exact = sorted({s.type for s in ctx.signals}) or ["none"]
        return [
            Finding(
                detector=self.name,
                kind="unhashable",
                confidence="low",
                explanation=(
                    f"{ctx.media.media_type or 'unknown type'}: no perceptual hash could be computed (only "
                    f"{', '.join(exact)}); a re-encoded copy of banked media would not be found"
                ),
            )
        ]

    def default_rules(self) -> list[Rule]:
        return [unhashable_rule(self.resources.settings.unhashable)]
