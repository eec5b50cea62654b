"""A local stand-in for the DSA Transparency Database's statement API (loopback only): ``POST
/api/v1/statements`` with ``{"statements": [...]}`` (1-100), Bearer token, its validation rules for the fields
Safeguard sends (a subset of the documented ones), its answers (201 with the stored statements and their
uuids; 422 with ``errors.statement_<i>`` or with ``errors.existing_puids``, the batch refused whole), and the
faults tests ask for: 5xx, slow answers (stored, then answered late), and a *hold* that stores the batch and then waits before answering
(so a test can kill the client after the database did the work).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from safeguard.dsa.territory import EEA
from tests.helpers.loopback_server import LoopbackServer

TOKEN = "X|ybqkTestTokenForLoopbackOnly0000"
PATH = "/api/v1/statements"

VISIBILITY = {
    "DECISION_VISIBILITY_CONTENT_REMOVED",
    "DECISION_VISIBILITY_CONTENT_DISABLED",
    "DECISION_VISIBILITY_CONTENT_DEMOTED",
    "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
    "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED",
    "DECISION_VISIBILITY_CONTENT_LABELLED",
    "DECISION_VISIBILITY_OTHER",
}
PROVISION = {
    "DECISION_PROVISION_PARTIAL_SUSPENSION",
    "DECISION_PROVISION_TOTAL_SUSPENSION",
    "DECISION_PROVISION_PARTIAL_TERMINATION",
    "DECISION_PROVISION_TOTAL_TERMINATION",
}
ACCOUNT = {"DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED"}
MONETARY = {"DECISION_MONETARY_SUSPENSION", "DECISION_MONETARY_TERMINATION", "DECISION_MONETARY_OTHER"}
GROUNDS = {"DECISION_GROUND_ILLEGAL_CONTENT", "DECISION_GROUND_INCOMPATIBLE_CONTENT"}
CONTENT_TYPES = {
    "CONTENT_TYPE_APP",
    "CONTENT_TYPE_AUDIO",
    "CONTENT_TYPE_IMAGE",
    "CONTENT_TYPE_PRODUCT",
    "CONTENT_TYPE_SYNTHETIC_MEDIA",
    "CONTENT_TYPE_TEXT",
    "CONTENT_TYPE_VIDEO",
    "CONTENT_TYPE_OTHER",
}
KEYWORDS = {
    "KEYWORD_AGE_SPECIFIC_RESTRICTIONS_MINORS",
    "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
    "KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS",
    "KEYWORD_UNSAFE_CHALLENGES",
}
SOURCES = {"SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER", "SOURCE_TYPE_OTHER_NOTIFICATION", "SOURCE_VOLUNTARY"}
AUTOMATED = {"AUTOMATED_DECISION_FULLY", "AUTOMATED_DECISION_PARTIALLY", "AUTOMATED_DECISION_NOT_AUTOMATED"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def validate(st: Any) -> dict[str, list[str]]:
    """The database's rules (StatementAPIController::multi_rules) for the fields Safeguard sends."""
    if not isinstance(st, dict):
        return {"statement": ["must be an object"]}
    e: dict[str, list[str]] = {}

    def bad(f: str, msg: str) -> None:
        e.setdefault(f, []).append(msg)

    vis = st.get("decision_visibility")
    if vis is not None and (not isinstance(vis, list) or not set(vis) <= VISIBILITY):
        bad("decision_visibility", "The selected decision visibility is invalid.")
    for f, allowed in (
        ("decision_provision", PROVISION),
        ("decision_account", ACCOUNT),
        ("decision_monetary", MONETARY),
    ):
        if st.get(f) is not None and st[f] not in allowed:
            bad(f, f"The selected {f.replace('_', ' ')} is invalid.")
    if not any(
        st.get(f) for f in ("decision_visibility", "decision_provision", "decision_account", "decision_monetary")
    ):
        bad("decision_visibility", "The decision visibility field is required when none of ... are present.")
    ground = st.get("decision_ground")
    if ground not in GROUNDS:
        bad("decision_ground", "The decision ground field is required.")
    pairs = {
        "DECISION_GROUND_ILLEGAL_CONTENT": (
            ("illegal_content_legal_ground", 500),
            ("illegal_content_explanation", 2000),
        ),
        "DECISION_GROUND_INCOMPATIBLE_CONTENT": (
            ("incompatible_content_ground", 500),
            ("incompatible_content_explanation", 2000),
        ),
    }
    for f, n in pairs.get(str(ground), ()):
        if not isinstance(st.get(f), str) or not st[f]:
            bad(f, f"The {f.replace('_', ' ')} field is required when decision ground is {ground}.")
        elif len(st[f]) > n:
            bad(f, f"The {f.replace('_', ' ')} must not be greater than {n} characters.")
    if not str(st.get("category") or "").startswith("STATEMENT_CATEGORY_"):
        bad("category", "The category field is required.")
    spec = st.get("category_specification")
    if spec is not None and (not isinstance(spec, list) or not set(spec) <= KEYWORDS):
        bad("category_specification", "The selected category specification is invalid.")
    ct = st.get("content_type")
    if not isinstance(ct, list) or not ct or not set(ct) <= CONTENT_TYPES:
        bad("content_type", "The content type field is required.")
    elif "CONTENT_TYPE_OTHER" in ct and not st.get("content_type_other"):
        bad("content_type_other", "The content type other field is required when content is other.")
    for f in ("content_date", "application_date"):
        if not isinstance(st.get(f), str) or not DATE.match(st[f]):
            bad(f, f"The {f.replace('_', ' ')} does not match the format YYYY-MM-DD.")
    scope = st.get("territorial_scope")
    if scope is not None and (not isinstance(scope, list) or not set(scope) <= EEA):
        bad("territorial_scope", "The selected territorial scope is invalid.")
    facts = st.get("decision_facts")
    if not isinstance(facts, str) or not facts or len(facts) > 5000:
        bad("decision_facts", "The decision facts field is required (at most 5000 characters).")
    if st.get("source_type") not in SOURCES:
        bad("source_type", "The source type field is required.")
    if st.get("automated_detection") not in ("Yes", "No"):
        bad("automated_detection", "The automated detection field is required.")
    if st.get("automated_decision") not in AUTOMATED:
        bad("automated_decision", "The automated decision field is required.")
    puid = st.get("puid")
    if not isinstance(puid, str) or not puid or len(puid) > 500:
        bad("puid", "The puid field is required.")
    return e


@dataclass
class Fault:
    kind: str  # "500", "slow", "hold" (store, then wait), "hold_before" (wait, store nothing)
    count: int = 1
    after: int = 0  # let this many requests through first


class FakeDsa(LoopbackServer):
    content_type = "application/json"

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, dict[str, Any]] = {}  # puid -> the statement, with its uuid
        self.calls = 0  # requests that reached the API (after the token check)
        self.posted: list[int] = []  # batch sizes of accepted requests
        self.faults: list[Fault] = []
        self.slow_seconds = 3.0

    @property
    def url(self) -> str:
        return self.origin

    def respond(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        status, out = self.handle(method, path, headers, body)
        return status, json.dumps(out).encode()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        if headers.get("Authorization", "") != f"Bearer {TOKEN}":
            return 401, {"message": "Unauthenticated."}
        if method != "POST" or path != PATH:
            return 404, {"message": "Not Found"}
        with self.lock:
            self.calls += 1
        fault = self.take_fault(self.faults)
        if fault is not None and fault.kind == "500":
            return 500, {"message": "Server Error"}
        if fault is not None and fault.kind == "hold_before":  # the client waits; nothing is stored yet
            self.hold()
            return 503, {"message": "Service Unavailable"}
        status, out = self._store(body)
        if fault is not None and fault.kind == "slow":  # the work is done; the answer comes late
            time.sleep(self.slow_seconds)
        if fault is not None and fault.kind == "hold":
            self.hold()
        return status, out

    def _store(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {"message": "Malformed JSON"}
        sts = payload.get("statements") if isinstance(payload, dict) else None
        if not isinstance(sts, list) or not 1 <= len(sts) <= 100:
            return 422, {"message": "The statements field must have between 1 and 100 items.", "errors": {}}
        errors = {f"statement_{i}": errs for i, st in enumerate(sts) if (errs := validate(st))}
        if errors:
            return 422, {"errors": errors}
        puids = [st["puid"] for st in sts]
        if len(set(puids)) != len(puids):
            msg = "The platform identifier(s) are not all unique within this call."
            return 422, {"message": msg, "errors": {"puid": [msg], "existing_puids": []}}
        with self.lock:
            existing = [p for p in puids if p in self.stored]
            if existing:
                msg = "The platform identifier(s) are not all unique within this call."
                return 422, {"message": msg, "errors": {"puid": [msg], "existing_puids": existing}}
            out = []
            for st in sts:  # stored together, as the database's bulk insert does
                saved = dict(st, uuid=str(uuid.uuid4()), created_at=time.strftime("%Y-%m-%d %H:%M:%S"))
                self.stored[st["puid"]] = saved
                out.append(saved)
            self.posted.append(len(sts))
        return 201, {"statements": out}
