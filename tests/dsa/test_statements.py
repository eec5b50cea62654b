"""Statements of reasons written with the decision: which decisions get one, its fields, the territory's
strict parsing on the scan and message APIs, and ``GET /v1/statements``. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safeguard import events, ledger
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.content import Action, Content, ContentKind, Decision, Finding, Signal, Verdict
from safeguard.dsa import EEA, parse_territory, statement_for
from safeguard.engine import Engine
from safeguard.errors import InvalidInput
from safeguard.store.models import DecisionRow, Event
from tests.dsa.dsa_server import validate
from tests.helpers.api import auth
from tests.helpers.dsa import csam_pdq, statements
from tests.media_factory import image_bytes


def scan(c: TestClient, key: str, pdq: str, **extra: Any) -> Any:
    return c.post("/v1/scan", headers=auth(key), json={"signals": [{"type": "pdq", "value": pdq}], **extra})


# -- territory ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("good", ["DE", "FR", "GR", "NO", "EU", "US", "GB"])
def test_territory_accepts_iso_codes_and_eu(good: str) -> None:
    assert parse_territory(good) == good


@pytest.mark.parametrize("bad", ["de", "DEU", "UK", "XK", "EL", " DE", "", "E", 49, True, ["DE"]])
def test_territory_refuses_everything_else(bad: object) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_territory(bad)
    assert e.value.code == "invalid_territory"


# -- the builder (pure) ---------------------------------------------------------------------------------
def _decision(verdict: Verdict, actions: tuple[str, ...], findings: tuple[Finding, ...], kind: ContentKind) -> Decision:
    return Decision(
        id="dec_0001",
        verdict=verdict,
        findings=findings,
        actions=tuple(Action(a) for a in actions),
        reasons=("known-csam",),
        policy_version="v1",
        created_at=datetime(2026, 12, 6, 17, 0, tzinfo=UTC),
        content_kind=kind,
        signals=(Signal("pdq", "f" * 64),),
    )


CSAM = Finding("hash_match", "hash_match", "pdq", "f" * 64, "csam", "csam", 7, 12, category="A1")


def test_only_restrictions_on_users_in_the_eea_get_a_statement() -> None:
    s = Settings()
    block = _decision(Verdict.BLOCK, ("block", "case"), (CSAM,), ContentKind.HASHES)
    review = _decision(Verdict.REVIEW, ("case",), (CSAM,), ContentKind.HASHES)
    for territory, decision, expected in [
        ("DE", block, True),
        ("EU", block, True),
        ("NO", block, True),  # the EEA
        ("US", block, False),
        ("GB", block, False),
        (None, block, False),
        ("DE", review, False),  # a case for review restricts nothing
    ]:
        got = statement_for(Content(ContentKind.HASHES, territory=territory), decision, s)
        assert (got is not None) == expected, (territory, decision.verdict)


def test_csam_block_is_illegal_content_with_the_documented_fields() -> None:
    s = Settings(dsa_ground_url="https://example.org/terms")
    got = statement_for(
        Content(ContentKind.HASHES, user_id="u-9", content_id="c-9", territory="FR"),
        _decision(Verdict.BLOCK, ("block",), (CSAM,), ContentKind.HASHES),
        s,
    )
    assert got is not None
    b = got.body
    assert validate(b) == {}  # what the database's rules accept
    assert b["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"] and "decision_provision" not in b
    assert b["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert b["illegal_content_legal_ground"] == s.dsa_illegal_ground and b["illegal_content_explanation"]
    assert "incompatible_content_ground" not in b
    assert b["category"] == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
    assert b["category_specification"] == ["KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"]
    assert b["content_type"] == ["CONTENT_TYPE_IMAGE"]  # a PDQ hash stands for an image
    assert b["content_date"] == b["application_date"] == "2026-12-06"
    assert b["territorial_scope"] == sorted(EEA)
    assert (b["source_type"], b["automated_detection"], b["automated_decision"]) == (
        "SOURCE_VOLUNTARY",
        "Yes",
        "AUTOMATED_DECISION_FULLY",
    )
    assert b["puid"] == "dec_0001" and b["decision_ground_reference_url"] == "https://example.org/terms"
    assert "distance 12" in b["decision_facts"] and "category A1" in b["decision_facts"]
    text = str(b)  # the database is public: no user, content id or hash value in it
    assert "u-9" not in text and "c-9" not in text and "f" * 16 not in text
    assert got.row["territory"] == "FR" and got.row["state"] == "pending"


def test_contact_restriction_is_a_partial_suspension_on_terms_grounds() -> None:
    grooming = Finding("grooming", "sextortion", score=0.9, explanation="threat")
    got = statement_for(
        Content(ContentKind.MESSAGE, territory="EU"),
        _decision(Verdict.REVIEW, ("case", "safety_message", "restrict_contact"), (grooming,), ContentKind.MESSAGE),
        Settings(),
    )
    assert got is not None
    b = got.body
    assert validate(b) == {}
    assert b["decision_provision"] == "DECISION_PROVISION_PARTIAL_SUSPENSION" and "decision_visibility" not in b
    assert b["decision_ground"] == "DECISION_GROUND_INCOMPATIBLE_CONTENT"
    assert b["incompatible_content_ground"] == Settings().dsa_incompatible_ground
    assert b["incompatible_content_explanation"] and "illegal_content_legal_ground" not in b
    assert b["category_specification"] == ["KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS"]
    assert b["content_type"] == ["CONTENT_TYPE_TEXT"]
    assert "contact with minors" in b["decision_facts"]


# -- with the engine: same transaction -------------------------------------------------------------------
def test_eu_block_writes_its_statement_with_the_decision(
    app_client: TestClient, keys: dict[str, str], engine: Engine, banks: BankService
) -> None:
    pdq = csam_pdq(banks)
    r = scan(app_client, keys["platform"], pdq, territory="DE", user_id="u-1")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["verdict"] == "block"
    [st] = statements(engine)
    assert (st.puid, st.decision_id, st.territory, st.state) == (d["id"], d["id"], "DE", "pending")
    assert validate(st.body) == {}
    with engine.db.read() as s:
        row = s.get(DecisionRow, d["id"])
        assert row is not None and row.body["territory"] == "DE"  # stored with the decision
        [ev] = s.execute(select(Event).where(Event.type == "statement.created")).scalars()
        assert ev.subject_id == d["id"] and ev.payload["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT"
        assert events.verify(s).ok and ledger.verify(s).ok  # the territory is covered by the row digest
    # not in the EU, no territory, or nothing restricted: no statement
    assert scan(app_client, keys["platform"], pdq, territory="US").json()["verdict"] == "block"
    assert scan(app_client, keys["platform"], pdq).json()["verdict"] == "block"
    allow = scan(app_client, keys["platform"], "0" * 64, territory="FR")
    assert allow.json()["verdict"] == "allow"
    assert len(statements(engine)) == 1


def test_batch_scan_items_carry_their_own_territory(
    app_client: TestClient, keys: dict[str, str], engine: Engine, banks: BankService
) -> None:
    pdq = csam_pdq(banks)
    items = [{"signals": [{"type": "pdq", "value": pdq}], "territory": t} for t in ("AT", "CH", "EU", None)]
    r = app_client.post("/v1/scan/batch", headers=auth(keys["platform"]), json={"items": items})
    assert r.status_code == 200, r.text
    ids = [d["id"] for d in r.json()["decisions"]]
    assert sorted((s.decision_id, s.territory) for s in statements(engine)) == sorted([(ids[0], "AT"), (ids[2], "EU")])
    bad = [*items[:2], {"signals": [{"type": "pdq", "value": pdq}], "territory": "Austria"}]
    r = app_client.post("/v1/scan/batch", headers=auth(keys["platform"]), json={"items": bad})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_territory"
    assert r.json()["error"]["details"] == {"item": 2}
    assert len(statements(engine)) == 2  # nothing written for the refused request


def test_multipart_upload_takes_a_territory(
    app_client: TestClient, keys: dict[str, str], engine: Engine, banks: BankService
) -> None:
    csam_pdq(banks, seed=5)
    files = {"file": ("a.jpg", image_bytes(5), "image/jpeg")}
    r = app_client.post("/v1/scan", headers=auth(keys["platform"]), files=files, data={"territory": "IE"})
    assert r.status_code == 200 and r.json()["verdict"] == "block"
    [st] = statements(engine)
    assert st.territory == "IE" and st.body["content_type"] == ["CONTENT_TYPE_IMAGE"]
    r = app_client.post("/v1/scan", headers=auth(keys["platform"]), files=files, data={"territory": "ie"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_territory"


@pytest.mark.parametrize("territory", ["de", "DEU", "", 7, "EU "])
def test_bad_territory_on_scan_is_422_and_writes_nothing(
    app_client: TestClient, keys: dict[str, str], engine: Engine, banks: BankService, territory: object
) -> None:
    pdq = csam_pdq(banks)
    r = scan(app_client, keys["platform"], pdq, territory=territory)
    assert r.status_code == 422 and r.json()["error"]["code"] in ("invalid_territory", "invalid_request")
    if isinstance(territory, str):
        assert r.json()["error"]["code"] == "invalid_territory"
    with engine.db.read() as s:
        assert s.execute(select(func.count()).select_from(DecisionRow)).scalar_one() == 0


SEXTORTION = ["send me a pic", "i'll share the pics with everyone unless you send more"]


def _messages(territory: str | None, *, batch_territory: str | None = None) -> dict[str, Any]:
    msgs = []
    for i, text in enumerate(SEXTORTION):
        m: dict[str, Any] = {
            "message_id": f"m{i}",
            "sender": {"id": "adult1", "age_band": "adult", "account_age_days": 3},
            "recipients": [{"id": "kid1", "age_band": "child"}],
            "text": text,
            "sent_at": 1000 + 10 * i,
        }
        if territory is not None:
            m["territory"] = territory
        msgs.append(m)
    body: dict[str, Any] = {"messages": msgs}
    if batch_territory is not None:
        body["territory"] = batch_territory
    return body


@pytest.mark.parametrize(
    ("territory", "batch", "expected"), [("NL", None, "NL"), (None, "EU", "EU"), ("US", None, None)]
)
def test_contact_restriction_in_a_conversation_writes_a_statement(
    app_client: TestClient,
    keys: dict[str, str],
    engine: Engine,
    territory: str | None,
    batch: str | None,
    expected: str | None,
) -> None:
    r = app_client.post(
        "/v1/conversations/conv9/messages",
        headers=auth(keys["platform"]),
        json=_messages(territory, batch_territory=batch),
    )
    assert r.status_code == 200, r.text
    d = r.json()["decision"]
    assert "restrict_contact" in {a["name"] for a in d["actions"]}
    got = statements(engine)
    if expected is None:
        assert got == []
        return
    [st] = got
    assert st.decision_id == d["id"] and st.territory == expected
    assert st.body["decision_provision"] == "DECISION_PROVISION_PARTIAL_SUSPENSION"
    assert validate(st.body) == {}


def test_bad_territory_on_messages_is_422(app_client: TestClient, keys: dict[str, str], engine: Engine) -> None:
    for body in (_messages("nl"), _messages(None, batch_territory="Europe")):
        r = app_client.post("/v1/conversations/conv9/messages", headers=auth(keys["platform"]), json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_territory", r.text
    assert statements(engine) == []


# -- GET /v1/statements ---------------------------------------------------------------------------------
def test_list_statements_pages_by_keyset_and_filters(
    app_client: TestClient, keys: dict[str, str], engine: Engine, banks: BankService
) -> None:
    pdq = csam_pdq(banks)
    ids = [scan(app_client, keys["platform"], pdq, territory="DE").json()["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = app_client.get("/v1/statements", headers=auth(keys["auditor"]), params=params)
        assert r.status_code == 200, r.text
        seen += [s["puid"] for s in r.json()["statements"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    first = app_client.get("/v1/statements", headers=auth(keys["admin"])).json()["statements"][0]
    assert first["state"] == "pending" and first["statement"]["puid"] == ids[0] and first["territory"] == "DE"
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = app_client.get("/v1/statements", headers=auth(keys["auditor"]), params={"since": later})
    assert r.status_code == 200 and r.json()["statements"] == []
    r = app_client.get("/v1/statements", headers=auth(keys["auditor"]), params={"state": "submitted"})
    assert r.json()["statements"] == []
    for role in ("platform", "moderator"):
        assert app_client.get("/v1/statements", headers=auth(keys[role])).status_code == 403
    for params in ({"cursor": "nope"}, {"state": "done"}, {"since": "yesterday"}, {"limit": 0}):
        r = app_client.get("/v1/statements", headers=auth(keys["auditor"]), params=params)
        assert r.status_code == 422, params


def test_no_decision_without_its_statement(engine: Engine, banks: BankService) -> None:
    """The statement is written in the decision's transaction: when it cannot be written, nothing is."""
    from sqlalchemy import text

    pdq = csam_pdq(banks)
    with engine.db.write() as s:
        s.execute(text("DROP TABLE dsa_statements"))
    content = Content(ContentKind.HASHES, signals=(Signal("pdq", pdq),), territory="DE")
    with pytest.raises(Exception, match="dsa_statements"):
        engine.scan(content)
    with engine.db.read() as s:
        assert s.execute(select(func.count()).select_from(DecisionRow)).scalar_one() == 0
        assert (
            s.execute(select(func.count()).select_from(Event).where(Event.type == "decision.created")).scalar_one() == 0
        )
    assert (
        engine.scan(Content(ContentKind.HASHES, signals=(Signal("pdq", pdq),))).verdict == Verdict.BLOCK
    )  # no EU user
