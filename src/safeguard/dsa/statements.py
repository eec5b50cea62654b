"""DSA statements of reasons: what the EU's Digital Services Act (Article 17, Article 24(5)) asks a platform
to publish in the Commission's Transparency Database for each restriction it imposes on a user in the Union.

Pure: :func:`statement_for` turns a recorded decision into the database's JSON (and the row that keeps it),
or ``None`` when the decision restricts nothing or the user is not in the EU/EEA. The engine calls it while
recording the decision, and writes the row in the same transaction (``Engine._record``), so a decision
never exists without its statement, nor a statement without its decision.

The field names and values are the Transparency Database API's (``POST /api/v1/statements``, read from
the Commission's API documentation and its source, digital-services-act/transparency-database):

- what was restricted: ``decision_visibility`` (a list; ``DECISION_VISIBILITY_CONTENT_REMOVED`` for a
  blocked upload or a terminated stream) and ``decision_provision`` (``DECISION_PROVISION_PARTIAL_SUSPENSION``
  for a contact restriction: part of the service, contact with minors, is suspended until review).
  Safeguard never suspends or terminates accounts or monetisation, so ``decision_account`` and
  ``decision_monetary`` are never set (a platform that does so itself writes its own statement);
- why: ``decision_ground`` is ``DECISION_GROUND_ILLEGAL_CONTENT`` for a CSAM bank match (with
  ``illegal_content_legal_ground`` from ``SAFEGUARD_DSA_ILLEGAL_GROUND`` and ``illegal_content_explanation``)
  and ``DECISION_GROUND_INCOMPATIBLE_CONTENT`` otherwise (grooming risk is a measured risk, not an
  established offence: ``incompatible_content_ground`` from ``SAFEGUARD_DSA_INCOMPATIBLE_GROUND`` and
  ``incompatible_content_explanation``); ``category`` ``STATEMENT_CATEGORY_PROTECTION_OF_MINORS`` with
  ``category_specification`` keywords; ``decision_facts``;
- how: ``source_type`` ``SOURCE_VOLUNTARY`` (own-initiative detection), ``automated_detection`` ``Yes``,
  ``automated_decision`` ``AUTOMATED_DECISION_FULLY`` (nobody looked before the restriction);
- what and when: ``content_type``, ``content_date`` and ``application_date`` (YYYY-MM-DD, the decision's
  UTC day), ``territorial_scope`` (every EEA state: a removal applies everywhere), and ``puid``, the
  platform's unique id of the statement: the decision id, which the database refuses to take twice.

The database is public: nothing here names a user, a content id, a conversation, a hash value or a bank
entry. The decision id (``puid``) is the platform's link back to its own records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Decision, Finding, Verdict
from safeguard.dsa.territory import EEA, in_eea

__all__ = ["CATEGORY", "BuiltStatement", "restrictions", "statement_for"]

CATEGORY = "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
REMOVED = "DECISION_VISIBILITY_CONTENT_REMOVED"
PARTIAL_SUSPENSION = "DECISION_PROVISION_PARTIAL_SUSPENSION"
ILLEGAL = "DECISION_GROUND_ILLEGAL_CONTENT"
INCOMPATIBLE = "DECISION_GROUND_INCOMPATIBLE_CONTENT"
CSAM = "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"
GROOMING = "KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS"
#: actions that take content down (the platform carries them out)
REMOVING_ACTIONS = frozenset({"block", "terminate_stream"})
#: actions that suspend part of the service for the user
RESTRICTING_ACTIONS = frozenset({"restrict_contact"})
#: the database's limits on free text (its validation rules)
MAX_FACTS, MAX_EXPLANATION, MAX_GROUND = 5000, 2000, 500

_KIND_TYPES = {
    ContentKind.IMAGE: "CONTENT_TYPE_IMAGE",
    ContentKind.VIDEO: "CONTENT_TYPE_VIDEO",
    ContentKind.STREAM: "CONTENT_TYPE_VIDEO",
    ContentKind.MESSAGE: "CONTENT_TYPE_TEXT",
    ContentKind.TEXT: "CONTENT_TYPE_TEXT",
}
_KIND_WORDS = {
    ContentKind.IMAGE: "an uploaded image",
    ContentKind.VIDEO: "an uploaded video",
    ContentKind.STREAM: "a live stream",
    ContentKind.MESSAGE: "messages in a conversation",
    ContentKind.TEXT: "a text",
    ContentKind.HASHES: "an upload (checked by its hashes, computed on the user's device)",
    ContentKind.URL: "a link",
    ContentKind.SEARCH: "a search",
}


@dataclass(frozen=True)
class BuiltStatement:
    """A statement's ``dsa_statements`` row (without id) and the database's JSON in it (``row["body"]``)."""

    row: dict[str, Any]

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.row["body"]
        return body


def restrictions(decision: Decision) -> tuple[list[str], str | None]:
    """(``decision_visibility``, ``decision_provision``) of a decision; both empty: it restricts nothing."""
    names = {a.name for a in decision.actions}
    visibility = [REMOVED] if decision.verdict == Verdict.BLOCK or names & REMOVING_ACTIONS else []
    provision = PARTIAL_SUSPENSION if names & RESTRICTING_ACTIONS else None
    return visibility, provision


def _content_types(content: Content, decision: Decision) -> tuple[list[str], str | None]:
    if content.kind in _KIND_TYPES:
        return [_KIND_TYPES[content.kind]], None
    types = {s.type for s in decision.signals}
    if "vpdq" in types:
        return ["CONTENT_TYPE_VIDEO"], None
    if "pdq" in types:
        return ["CONTENT_TYPE_IMAGE"], None
    return ["CONTENT_TYPE_OTHER"], "a file, identified by its cryptographic hash"


def _is_csam(f: Finding) -> bool:
    return f.bank_kind == "csam"


def _finding_fact(f: Finding) -> str:
    if f.kind in ("hash_match", "video_match") or f.bank_kind is not None:
        what = "known child sexual abuse material" if _is_csam(f) else f"material listed as {f.bank_kind or 'harmful'}"
        cat = f" (category {f.category})" if f.category else ""
        how = f"{f.signal_type} hash" if f.signal_type else "hash"
        dist = f" at distance {f.distance}" if f.distance else " exactly" if f.distance == 0 else ""
        conf = "" if f.confidence == "high" else " (lower confidence)"
        return f"it matched{dist} ({how}) an entry of a hash list of {what}{cat}{conf}"
    if f.detector == "grooming":
        score = f", risk score {f.score:.2f}" if f.score is not None else ""
        return f"the grooming detector found {f.kind.replace('_', ' ')}{score}"
    return f"the {f.detector} detector reported {f.kind.replace('_', ' ')}"


def _facts(content: Content, decision: Decision, visibility: list[str], provision: str | None) -> str:
    seen: list[str] = []
    for f in decision.findings:
        fact = _finding_fact(f)
        if fact not in seen:
            seen.append(fact)
    found = "; ".join(seen[:5]) + (f"; and {len(seen) - 5} more findings" if len(seen) > 5 else "")
    done = []
    if visibility:
        done.append("the content was removed (the upload refused, or the stream ended)")
    if provision:
        done.append("the user's contact with minors on the service was restricted until a moderator reviews the case")
    rules = ", ".join(decision.reasons) or "its default verdict"
    text = (
        f"Automated checks of {_KIND_WORDS.get(content.kind, 'content')} on the service: {found or 'no finding'}. "
        f"Under the platform's child-safety policy (rules: {rules}; policy version {decision.policy_version}), "
        f"{' and '.join(done)}. Detection and decision were automated; a moderator may review the case."
    )
    return text[:MAX_FACTS]


def statement_for(content: Content, decision: Decision, settings: Settings) -> BuiltStatement | None:
    """The statement of reasons for ``decision``, or ``None``: no restriction, or no EU/EEA territory."""
    if not in_eea(content.territory):
        return None
    visibility, provision = restrictions(decision)
    if not visibility and not provision:
        return None
    assert content.territory is not None
    day = decision.created_at.date().isoformat()
    ctypes, ctype_other = _content_types(content, decision)
    facts = _facts(content, decision, visibility, provision)
    csam = visibility and any(_is_csam(f) and f.confidence == "high" for f in decision.findings)
    keywords = []
    if any(_is_csam(f) for f in decision.findings):
        keywords.append(CSAM)
    if any(f.detector == "grooming" for f in decision.findings):
        keywords.append(GROOMING)
    body: dict[str, Any] = {}
    if visibility:
        body["decision_visibility"] = visibility
    if provision:
        body["decision_provision"] = provision
    if csam:
        body["decision_ground"] = ILLEGAL
        body["illegal_content_legal_ground"] = settings.dsa_illegal_ground[:MAX_GROUND]
        body["illegal_content_explanation"] = (
            "The content matched a hash list of known child sexual abuse material; possessing and distributing "
            "it is a criminal offence in every Member State."
        )[:MAX_EXPLANATION]
    else:
        body["decision_ground"] = INCOMPATIBLE
        body["incompatible_content_ground"] = settings.dsa_incompatible_ground[:MAX_GROUND]
        body["incompatible_content_explanation"] = (
            "Automated child-safety checks found a risk to minors that the platform's terms do not allow; "
            "the restriction protects minors until a moderator has reviewed the case."
        )[:MAX_EXPLANATION]
    if settings.dsa_ground_url:
        body["decision_ground_reference_url"] = settings.dsa_ground_url[:500]
    body["category"] = CATEGORY
    if keywords:
        body["category_specification"] = keywords
    body["content_type"] = ctypes
    if ctype_other:
        body["content_type_other"] = ctype_other
    body.update(
        {
            "content_date": day,
            "application_date": day,
            "territorial_scope": sorted(EEA),
            "decision_facts": facts,
            "source_type": "SOURCE_VOLUNTARY",
            "automated_detection": "Yes",
            "automated_decision": "AUTOMATED_DECISION_FULLY",
            "puid": decision.id,
        }
    )
    row = {
        "puid": decision.id,
        "decision_id": decision.id,
        "tenant": content.tenant,
        "territory": content.territory,
        "created_at": decision.created_at,
        "body": body,
        "state": "pending",
        "batch": None,
        "attempts": 0,
        "uuid": None,
        "errors": None,
        "submitted_at": None,
        "updated_at": decision.created_at,
    }
    return BuiltStatement(row)
