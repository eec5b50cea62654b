"""User reports: every reason, bytes and hashes scanned, duplicates joining one case, advice per locale."""

from __future__ import annotations

import hashlib
import time

import pytest
from fastapi.testclient import TestClient

from safeguard.accounts import Who
from safeguard.banks import BankService
from safeguard.cases import CaseService
from safeguard.engine import Engine
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from safeguard.user_reports import LOCALES, advice, locale_of
from safeguard.user_reports.advice import TEXT
from tests.helpers.api import auth
from tests.media_factory import image_bytes

MOD = Who("user:mia", "moderator", "mia", "user", 1)


def report(client: TestClient, key: str, **body: object) -> dict[str, object]:
    r = client.post("/v1/user-reports", json={"reporter_id": "r-1", **body}, headers=auth(key))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def case_of(client: TestClient, keys: dict[str, str], case_id: object) -> dict[str, object]:
    return client.get(f"/v1/cases/{case_id}", headers=auth(keys["moderator"])).json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("reason", "priority", "self_help"),
    [
        ("csam", 1, True),
        ("grooming", 1, False),
        ("sextortion", 0, True),
        ("self_generated_minor", 0, True),
        ("other", 2, False),
    ],
)
def test_each_reason_opens_a_user_reports_case(
    app_client: TestClient, keys: dict[str, str], reason: str, priority: int, self_help: bool
) -> None:
    got = report(app_client, keys["platform"], reason=reason, reported_user_id="bad-1", text="they keep messaging me")
    assert got["status"] == "received" and str(got["id"]).startswith("ur_") and got["matched"] is False
    kinds = [a["kind"] for a in got["advice"]]  # type: ignore[union-attr]
    assert kinds[0] == "trusted_adult" and {"report_ceop", "report_ncmec"} <= set(kinds)
    assert ("take_it_down" in kinds) is self_help and ("report_remove" in kinds) is self_help
    assert ("sextortion" in kinds) is (reason == "sextortion")
    case = case_of(app_client, keys, got["case_id"])
    assert (case["queue"], case["priority"], case["report_count"], case["status"]) == (
        "user_reports",
        priority,
        1,
        "open",
    )
    assert case["subject"] == {"kind": "user", "id": "bad-1"} and case["items"][0]["decision_id"] == got["id"]  # type: ignore[index]
    again = app_client.get(f"/v1/user-reports/{got['id']}", headers=auth(keys["platform"])).json()
    assert again["status"] == "received" and again["case_id"] == got["case_id"]


def test_duplicate_reports_of_the_same_content_join_one_case(app_client: TestClient, keys: dict[str, str]) -> None:
    a = report(app_client, keys["platform"], reason="other", content_id="post-9")
    b = report(app_client, keys["platform"], reason="sextortion", content_id="post-9", reporter_id="r-2")
    c = report(app_client, keys["platform"], reason="other", content_id="post-10")
    assert a["case_id"] == b["case_id"] != c["case_id"]
    case = case_of(app_client, keys, a["case_id"])
    assert case["report_count"] == 2 and case["priority"] == 0  # the sextortion report raised it
    assert [r["reason"] for r in case["user_reports"]] == ["other", "sextortion"]  # type: ignore[union-attr]
    # the same file sent twice without a content id: keyed by its SHA-256
    data = image_bytes(7)
    files = {"file": ("x.jpg", data, "image/jpeg")}
    first = app_client.post(
        "/v1/user-reports", data={"reporter_id": "r", "reason": "csam"}, files=files, headers=auth(keys["platform"])
    )
    second = app_client.post(
        "/v1/user-reports", data={"reporter_id": "s", "reason": "csam"}, files=files, headers=auth(keys["platform"])
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["case_id"] == second.json()["case_id"]
    case = case_of(app_client, keys, first.json()["case_id"])
    assert case["subject"] == {"kind": "content", "id": "sha256:" + hashlib.sha256(data).hexdigest()}


def test_reported_image_matching_a_bank_is_found_and_confirmation_banks_it(
    app_client: TestClient, engine: Engine, banks: BankService, keys: dict[str, str]
) -> None:
    banks.create("csam", actor="t", default_category="A1")
    data = image_bytes(2)
    entry = banks.add_entry(
        "csam", signal_type="pdq", value=PDQSignal().compute(Media.from_bytes(data))[0].value, actor="t"
    )
    r = app_client.post(
        "/v1/user-reports",
        data={"reporter_id": "r-1", "reason": "self_generated_minor", "reported_user_id": "bad-2", "locale": "de-AT"},
        files={"file": ("me.jpg", data, "image/jpeg")},
        headers=auth(keys["platform"]),
    )
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["matched"] is True and got["verdict"] == "block" and got["locale"] == "de"
    assert got["status_text"] == TEXT["de"]["received"]
    case = case_of(app_client, keys, got["case_id"])
    # the policy's case action and the report filed in the same user_reports case: one case, one report
    assert (case["queue"], case["priority"], case["report_count"]) == ("user_reports", 0, 1)
    assert {f["bank"] for f in case["findings"]} == {"csam"}  # type: ignore[union-attr]
    cs: CaseService = app_client.app.state.services.cases  # type: ignore[attr-defined]
    cs.claim(MOD, int(got["case_id"]))
    done = cs.decide(MOD, int(got["case_id"]), outcome="confirmed", category="A2")
    assert done.opinions == [entry.id] and len(done.bank_entries) == 3
    after = app_client.get(f"/v1/user-reports/{got['id']}?country=GB", headers=auth(keys["platform"])).json()
    assert after["status"] == "action_taken" and after["status_text"] == TEXT["de"]["action_taken"]
    assert "report_ncmec" not in [a["kind"] for a in after["advice"]]


def test_hash_only_report(app_client: TestClient, banks: BankService, keys: dict[str, str]) -> None:
    banks.create("csam", actor="t")
    data = image_bytes(4)
    md5 = hashlib.md5(data).hexdigest()
    banks.add_entry("csam", signal_type="md5", value=md5, actor="t")
    got = report(app_client, keys["platform"], reason="csam", signals=[{"type": "md5", "value": md5}])
    assert got["matched"] is True
    assert case_of(app_client, keys, got["case_id"])["subject"] == {"kind": "content", "id": f"md5:{md5}"}


def test_grooming_state_of_a_reported_conversation(app_client: TestClient, keys: dict[str, str]) -> None:
    msgs = [
        {
            "message_id": f"m{i}",
            "sender": {"id": "adult-1", "age_band": "adult"},
            "recipients": [{"id": "kid-1", "age_band": "child"}],
            "text": text,
            "sent_at": time.time() - 100 + i,
        }
        for i, text in enumerate(
            ["hi, how was school?", "you seem really mature for your age", "don't tell your parents we talk"]
        )
    ]
    r = app_client.post("/v1/conversations/conv-1/messages", json={"messages": msgs}, headers=auth(keys["platform"]))
    assert r.status_code == 200, r.text
    got = report(app_client, keys["platform"], reason="grooming", conversation_id="conv-1", reported_user_id="adult-1")
    item = case_of(app_client, keys, got["case_id"])["items"][0]  # type: ignore[index]
    grooming = [f for f in item["findings"] if f["detector"] == "grooming"]
    assert grooming and grooming[0]["kind"] == "grooming_risk" and grooming[0]["score"] > 0
    none = report(app_client, keys["platform"], reason="grooming", conversation_id="conv-unknown")
    assert case_of(app_client, keys, none["case_id"])["subject"] == {"kind": "conversation", "id": "conv-unknown"}


def test_bad_reports_and_roles(app_client: TestClient, keys: dict[str, str]) -> None:
    h = auth(keys["platform"])
    for body, status, code in (
        ({"reporter_id": "r", "reason": "spam", "content_id": "c"}, 422, "invalid_reason"),
        ({"reporter_id": "r", "reason": "other"}, 422, "nothing_reported"),
        ({"reporter_id": "r", "reason": "other", "content_id": "c", "text": "x" * 2001}, 413, "text_too_long"),
        ({"reporter_id": "r", "reason": "other", "content_id": "c", "extra": 1}, 422, "invalid_request"),
        ({"reporter_id": "r", "reason": "csam", "signals": [{"type": "md5", "value": "zz"}]}, 422, None),
    ):
        r = app_client.post("/v1/user-reports", json=body, headers=h)
        assert r.status_code == status, (body, r.text)
        if code:
            assert r.json()["error"]["code"] == code
    r = app_client.post("/v1/user-reports", content=b"x", headers={**h, "Content-Type": "text/plain"})
    assert r.status_code == 415
    r = app_client.post(
        "/v1/user-reports",
        data={"reporter_id": "r", "reason": "csam"},
        files={"file": ("x", b"not an image", "image/jpeg")},
        headers=h,
    )
    assert r.status_code in (415, 422) and "error" in r.json()
    for role in ("moderator", "auditor"):
        r = app_client.post(
            "/v1/user-reports",
            json={"reporter_id": "r", "reason": "other", "content_id": "c"},
            headers=auth(keys[role]),
        )
        assert r.status_code == 403
    assert app_client.get("/v1/user-reports/ur_nope", headers=h).json()["error"]["code"] == "user_report_not_found"


def test_advice_is_written_for_every_locale() -> None:
    assert (
        locale_of("es-MX") == "es"
        and locale_of("FR_ca") == "fr"
        and locale_of("pt-BR") == "en"
        and locale_of(None) == "en"
    )
    keys = set(TEXT["en"])
    for loc in LOCALES:
        assert set(TEXT[loc]) == keys
        assert all(len(t) <= 200 for t in TEXT[loc].values())  # short: a phone screen
    texts = {loc: [a.text for a in advice("sextortion", loc)] for loc in LOCALES}
    assert len({t[0] for t in texts.values()}) == 4  # each language its own
    assert [a.kind for a in advice("other", "en", "US")] == ["trusted_adult", "danger", "report_ncmec"]
    assert [a.kind for a in advice("self_generated_minor", "fr", "GB")][-2:] == ["report_ceop", "report_remove"]
    assert all(
        a.url and a.url.startswith("https://") for a in advice("csam", "es") if a.kind.startswith(("report", "take"))
    )


def test_nul_characters_are_refused_not_stored(app_client: TestClient, keys: dict[str, str]) -> None:
    r = app_client.post(
        "/v1/user-reports",
        json={"reporter_id": "r", "reason": "other", "content_id": "c", "text": "a\x00b"},
        headers=auth(keys["platform"]),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_encoding"
    r = app_client.get("/v1/cases?status=all&assignee=a%00b", headers=auth(keys["moderator"]))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_encoding"
    r = app_client.post("/v1/session", json={"name": "a\x00b", "password": "x", "totp": "123456"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_encoding"
