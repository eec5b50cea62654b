"""Negative banks: known-benign hashes that suppress other banks' matches for the same content.

Hash lists carry entries that match benign things (a blank frame, a stock logo, a meme). A bank of kind
``negative`` lists such hashes; when an upload matches one of its entries with high confidence (within
the bank's match threshold, an entry nobody disputes), every other bank match on that upload is kept in
the decision, marked ``suppressed_by`` (the negative entry's id), and left out of the policy: the
verdict is what the rest of the findings (grooming, classifiers) make it, ``allow`` when there are none.
Pure: no IO.
"""

from __future__ import annotations

from dataclasses import replace

from safeguard.content import Finding

__all__ = ["NEGATIVE", "REASON", "active", "suppress"]

NEGATIVE = "negative"
#: the reason a decision carries when a negative bank suppressed matches
REASON = "negative-bank"


def suppress(findings: list[Finding]) -> list[Finding]:
    """``findings`` with every other bank match suppressed by the first confident negative match."""
    neg = next((f for f in findings if f.bank_kind == NEGATIVE and f.confidence == "high"), None)
    if neg is None:
        return findings
    note = f"suppressed by negative bank {neg.bank!r} (entry {neg.entry_id})"
    return [
        replace(f, suppressed_by=neg.entry_id, explanation=f"{f.explanation}; {note}" if f.explanation else note)
        if f.bank is not None and f.bank_kind != NEGATIVE
        else f
        for f in findings
    ]


def active(findings: list[Finding] | tuple[Finding, ...]) -> list[Finding]:
    """The findings the policy sees: neither a negative bank's match nor one it suppressed."""
    return [f for f in findings if f.suppressed_by is None and f.bank_kind != NEGATIVE]
