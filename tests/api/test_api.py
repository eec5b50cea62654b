"""The HTTP API through an in-process client: scans, banks, records, roles and errors."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from safeguard.banks import BankService
from safeguard.engine import Engine
from safeguard.store.models import DecisionRow
from tests.helpers.api import auth, make_bank_with
from tests.media_factory import encode, image_bytes, make_image


def upload(client: TestClient, key: str, data: bytes, name: str = "x.jpg", **fields: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/scan", headers=auth(key), files={"file": (name, data, "application/octet-stream")}, data=fields
    )


def test_scan_multipart_block_and_allow(app_client: TestClient, keys: dict[str, str]) -> None:
    banked = image_bytes(1, "PNG")
    added = make_bank_with(app_client, keys, banked)
    assert {s["type"] for s in added["added"]} == {"sha256", "md5", "pdq"}
    r = upload(app_client, keys["platform"], encode(make_image(1), "JPEG", quality=70), content_id="c-9", user_id="u-9")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "block"
    assert body["findings"][0]["bank"] == "csam" and body["findings"][0]["signal_type"] == "pdq"
    assert body["findings"][0]["category"] == "A1"
    assert [a["name"] for a in body["actions"]] == ["block", "case", "preserve", "webhook"]
    assert body["case_id"] and body["content_id"] == "c-9" and body["timing_ms"] > 0
    r = upload(app_client, keys["platform"], image_bytes(2))
    assert r.json()["verdict"] == "allow"
    got = app_client.get(f"/v1/decisions/{body['id']}", headers=auth(keys["platform"]))
    assert got.status_code == 200 and got.json()["verdict"] == "block"


def test_scan_hash_only(app_client: TestClient, keys: dict[str, str]) -> None:
    banked = image_bytes(3, "PNG")
    added = make_bank_with(app_client, keys, banked)
    pdq = next(s for s in added["added"] if s["type"] == "pdq")
    r = app_client.post(
        "/v1/scan",
        headers=auth(keys["platform"]),
        json={"signals": [{"type": "pdq", "value": pdq["value"], "quality": 100}], "user_id": "e2ee-1"},
    )
    assert r.status_code == 200 and r.json()["verdict"] == "block"
    assert r.json()["content_kind"] == "hashes"
    r = app_client.post(
        "/v1/scan", headers=auth(keys["platform"]), json={"signals": [{"type": "md5", "value": "0" * 32}]}
    )
    assert r.json()["verdict"] == "allow"


def test_hash_only_scans_are_each_recorded_with_their_events(
    app_client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    """Hash-only scans run on the event loop and share group commits (allow decisions as plain rows):
    every answered decision is in the database, with its events, and the chain verifies."""
    from safeguard import events
    from safeguard.store.models import CaseItem, Event

    added = make_bank_with(app_client, keys, image_bytes(4, "PNG"))
    pdq = next(s for s in added["added"] if s["type"] == "pdq")["value"]
    answered = {}
    for i in range(20):
        value = pdq if i % 2 else "f" * 64
        r = app_client.post(
            "/v1/scan", headers=auth(keys["platform"]), json={"signals": [{"type": "pdq", "value": value}]}
        )
        assert r.status_code == 200
        answered[r.json()["id"]] = r.json()["verdict"]
    assert sorted(answered.values()) == ["allow"] * 10 + ["block"] * 10
    with engine.db.read() as s:
        rows = dict(s.execute(select(DecisionRow.id, DecisionRow.verdict)).all())
        assert rows == answered
        assert s.execute(select(func.count()).select_from(CaseItem)).scalar_one() == 10
        created = s.execute(select(Event.subject_id).where(Event.type == "decision.created")).scalars().all()
        assert set(created) == set(answered)
        assert events.verify(s).ok


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"files": {"file": ("a.jpg", b"", "image/jpeg")}}, 422, "empty_media"),
        ({"files": {"file": ("a.txt", b"hello world, not an image", "text/plain")}}, 415, "unsupported_media_type"),
        ({"files": {"file": ("a.jpg", image_bytes(4)[:900], "image/jpeg")}}, 422, "corrupt_media"),
        ({"files": {"other": ("a.jpg", image_bytes(4), "image/jpeg")}}, 422, "missing_file"),
        ({"json": {"signals": []}}, 422, "invalid_request"),
        ({"json": {"signals": [{"type": "pdq", "value": "abc"}]}}, 422, "invalid_signal"),
        ({"json": {"signals": [{"type": "phash", "value": "abc"}]}}, 422, "unknown_signal"),
        ({"json": {"signals": [{"type": "md5", "value": "0" * 32}], "surprise": 1}}, 422, "invalid_request"),
        ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 422, "invalid_json"),
        ({"content": b"raw", "headers": {"content-type": "image/jpeg"}}, 415, "unsupported_content_type"),
    ],
)
def test_scan_bad_input_is_4xx_and_records_nothing(
    app_client: TestClient, keys: dict[str, str], engine: Engine, kwargs: dict, status: int, code: str
) -> None:  # type: ignore[type-arg]
    kwargs = dict(kwargs)  # parametrised values are shared between backends: never mutate them
    headers = {**auth(keys["platform"]), **kwargs.pop("headers", {})}
    r = app_client.post("/v1/scan", headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    with engine.db.read() as s:
        assert s.execute(select(func.count()).select_from(DecisionRow)).scalar_one() == 0


def test_decompression_bomb_and_oversize(settings, engine: Engine, keys: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    from safeguard.api import create_app

    app = create_app(settings.with_(max_upload_bytes=300_000, max_image_pixels=4_000_000), engine=engine)
    engine.settings = app.state.services.engine.settings = settings.with_(
        max_upload_bytes=300_000, max_image_pixels=4_000_000
    )
    with TestClient(app) as c:
        buf = io.BytesIO()
        Image.new("L", (5000, 5000)).save(buf, "PNG")
        r = upload(c, keys["platform"], buf.getvalue(), "bomb.png")
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_pixels"
        big = b"\xff\xd8\xff" + b"\x00" * 600_000
        r = upload(c, keys["platform"], big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        # a chunked body with no Content-Length is counted as it streams
        r = c.post(
            "/v1/scan",
            headers={**auth(keys["platform"]), "content-type": "application/json"},
            content=iter([b"x" * 200_000] * 3),
        )
        assert r.status_code == 413


def test_auth_and_roles(app_client: TestClient, keys: dict[str, str]) -> None:
    assert app_client.post("/v1/scan", json={}).json()["error"]["code"] == "missing_api_key"
    r = app_client.get("/v1/banks", headers=auth("sg_nope_nope"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = app_client.post("/v1/banks", headers=auth(keys["platform"]), json={"name": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_role"
    assert app_client.post("/v1/banks", headers=auth(keys["moderator"]), json={"name": "x"}).status_code == 403
    assert app_client.get("/v1/events", headers=auth(keys["admin"])).status_code == 403  # auditors only
    assert app_client.get("/v1/events", headers=auth(keys["auditor"])).status_code == 200
    assert app_client.post("/v1/scan", headers=auth(keys["auditor"]), json={}).status_code == 403
    assert app_client.get("/v1/cases", headers=auth(keys["platform"])).status_code == 403


def test_revoked_key_stops_working(app_client: TestClient, engine: Engine) -> None:
    from safeguard.keys import KeyService

    ks: KeyService = app_client.app.state.services.keys  # type: ignore[attr-defined]
    k = ks.create("admin", actor="t")
    assert app_client.get("/v1/banks", headers=auth(k["key"])).status_code == 200
    ks.revoke(k["prefix"], actor="t")
    assert app_client.get("/v1/banks", headers=auth(k["key"])).status_code == 401
    assert k["key"] not in str(ks.list())


def test_bank_lifecycle_over_api(app_client: TestClient, keys: dict[str, str]) -> None:
    A, M = auth(keys["admin"]), auth(keys["moderator"])
    r = app_client.post(
        "/v1/banks", headers=A, json={"name": "iwf", "kind": "csam", "dihedral": True, "thresholds": {"pdq": 28}}
    )
    assert r.status_code == 201 and r.json()["thresholds"] == {"pdq": 28}
    assert app_client.post("/v1/banks", headers=A, json={"name": "iwf"}).json()["error"]["code"] == "bank_exists"
    csv = "signal_type,value,category\nmd5,d41d8cd98f00b204e9800998ecf8427e,A1\nmd5,zz,A1\n"
    r = app_client.post("/v1/banks/iwf/import?format=csv&source=iwf", headers=A, content=csv)
    assert r.status_code == 200
    assert r.json()["added_or_updated"] == 1 and r.json()["errors"][0]["line"] == 3
    r = app_client.post(
        "/v1/banks/iwf/entries",
        headers=M,
        json={"signal_type": "sha256", "value": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    )
    assert r.status_code == 201
    entry = r.json()
    r = app_client.get("/v1/banks/iwf/entries", headers=M)
    assert len(r.json()["entries"]) == 2
    assert app_client.patch(f"/v1/entries/{entry['id']}", headers=M, json={"enabled": False}).json()["enabled"] is False
    r = app_client.post(f"/v1/entries/{entry['id']}/opinions", headers=M, json={"opinion": "confirmed"})
    assert r.status_code == 201 and r.json()["opinion"] == "confirmed"
    r = app_client.get("/v1/banks/iwf/export?format=csv", headers=M)
    assert r.status_code == 200 and r.text.count("\n") == 2  # header + the enabled entry
    r = app_client.get("/v1/banks/iwf/export?format=jsonl&include_disabled=true", headers=M)
    assert r.text.count("\n") == 2
    assert app_client.patch("/v1/banks/iwf", headers=A, json={"enabled": False}).json()["enabled"] is False
    assert app_client.get("/v1/banks/iwf", headers=M).json()["entry_count"] == 2


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/banks/nope", "bank_not_found"),
        ("/v1/entries/999", "entry_not_found"),
        ("/v1/cases/999", "case_not_found"),
        ("/v1/decisions/dec_x", "decision_not_found"),
        ("/v1/banks/nope/export", "bank_not_found"),
    ],
)
def test_unknown_ids_are_404(app_client: TestClient, keys: dict[str, str], path: str, code: str) -> None:
    r = app_client.get(path, headers=auth(keys["admin"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == code


def test_cases_and_events_are_readable_and_views_audited(app_client: TestClient, keys: dict[str, str]) -> None:
    make_bank_with(app_client, keys, image_bytes(5, "PNG"))
    d = upload(app_client, keys["platform"], image_bytes(5, "PNG"), user_id="u-5").json()
    cases = app_client.get("/v1/cases", headers=auth(keys["moderator"])).json()["cases"]
    assert [c["id"] for c in cases] == [d["case_id"]]
    case = app_client.get(f"/v1/cases/{d['case_id']}", headers=auth(keys["moderator"])).json()
    assert case["items"][0]["decision_id"] == d["id"]
    evs = app_client.get("/v1/events?limit=1000", headers=auth(keys["auditor"])).json()["events"]
    assert evs[-1]["type"] == "case.viewed" and evs[-1]["actor"].endswith("test-moderator")
    assert app_client.get("/v1/events/verify", headers=auth(keys["auditor"])).json()["ok"] is True


def test_webhook_endpoints_admin(app_client: TestClient, keys: dict[str, str]) -> None:
    A = auth(keys["admin"])
    r = app_client.post("/v1/webhooks", headers=A, json={"url": "http://127.0.0.1:9/h", "events": ["decision.block"]})
    assert r.status_code == 201 and len(r.json()["secret"]) >= 16
    assert len(app_client.get("/v1/webhooks", headers=A).json()["webhooks"]) == 1
    assert app_client.delete(f"/v1/webhooks/{r.json()['id']}", headers=A).status_code == 204
    assert app_client.post("/v1/webhooks", headers=A, json={"url": "not a url"}).status_code == 422


def test_ops_endpoints(app_client: TestClient, keys: dict[str, str]) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    r = app_client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["database"] == "ok"
    upload(app_client, keys["platform"], image_bytes(6))
    m = app_client.get("/metrics").text
    assert "safeguard_scans_total" in m and "safeguard_index_entries" in m
    spec = app_client.get("/openapi.json").json()
    assert "/v1/scan" in spec["paths"] and "multipart/form-data" in str(spec["paths"]["/v1/scan"])


def test_scan_batch_gives_each_item_its_recorded_decision(
    app_client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    """``POST /v1/scan/batch``: one decision per item, in order, each recorded as ``/v1/scan`` records it
    (row, events, case item for a match), and the same verdicts as one request per item."""
    from safeguard import events
    from safeguard.store.models import CaseItem

    added = make_bank_with(app_client, keys, image_bytes(4, "PNG"))
    pdq = next(s for s in added["added"] if s["type"] == "pdq")["value"]
    near = format(int(pdq, 16) ^ 0b111, "064x")  # 3 bits away: still a match
    values = [pdq, "f" * 64, near, "0" * 63 + "1"]
    items = [{"signals": [{"type": "pdq", "value": v}], "content_id": f"c{i}"} for i, v in enumerate(values)]
    r = app_client.post("/v1/scan/batch", headers=auth(keys["platform"]), json={"items": items})
    assert r.status_code == 200, r.text
    got = r.json()["decisions"]
    assert [d["verdict"] for d in got] == ["block", "allow", "block", "allow"]
    assert [d["content_id"] for d in got] == ["c0", "c1", "c2", "c3"]
    assert [f["distance"] for f in got[2]["findings"]] == [3]
    one_by_one = [
        app_client.post("/v1/scan", headers=auth(keys["platform"]), json=item).json()["verdict"] for item in items
    ]
    assert one_by_one == [d["verdict"] for d in got]
    for d in got:
        assert (
            app_client.get(f"/v1/decisions/{d['id']}", headers=auth(keys["moderator"])).json()["verdict"]
            == d["verdict"]
        )
    with engine.db.read() as s:
        assert s.execute(select(func.count()).select_from(DecisionRow)).scalar_one() == 8
        assert s.execute(select(func.count()).select_from(CaseItem)).scalar_one() == 4
        assert events.verify(s).ok


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"items": []}, 422, "invalid_request"),
        ({"items": [{"signals": [{"type": "pdq", "value": "f" * 64}]}] * 1001}, 422, "invalid_request"),
        (
            {
                "items": [
                    {"signals": [{"type": "pdq", "value": "f" * 64}]},
                    {"signals": [{"type": "pdq", "value": "xyz"}]},
                ]
            },
            422,
            "invalid_signal",
        ),
        ({"items": [{"signals": [{"type": "nope", "value": "f" * 64}]}]}, 422, "unknown_signal"),
        ({"signals": [{"type": "pdq", "value": "f" * 64}]}, 422, "invalid_request"),
    ],
)
def test_scan_batch_bad_input_fails_whole_and_records_nothing(
    app_client: TestClient, keys: dict[str, str], engine: Engine, body: dict, status: int, code: str
) -> None:  # type: ignore[type-arg]
    r = app_client.post("/v1/scan/batch", headers=auth(keys["platform"]), json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    if code == "invalid_signal":
        assert r.json()["error"]["details"]["item"] == 1
    with engine.db.read() as s:
        assert s.execute(select(func.count()).select_from(DecisionRow)).scalar_one() == 0


def test_scan_batch_needs_the_platform_role(app_client: TestClient, keys: dict[str, str]) -> None:
    body = {"items": [{"signals": [{"type": "pdq", "value": "f" * 64}]}]}
    assert app_client.post("/v1/scan/batch", headers=auth(keys["moderator"]), json=body).status_code == 403
    assert app_client.post("/v1/scan/batch", json=body).status_code == 401
    r = app_client.post(
        "/v1/scan/batch",
        headers=auth(keys["platform"]),
        content=b"x",
    )
    assert r.status_code == 415


def test_ops_endpoints_report_index_sizes_after_a_bank_change_without_a_scan(
    app_client: TestClient, banks: BankService
) -> None:
    """Another process (here: the bank service beside the app) adds an entry; no query arrives."""
    before = app_client.get("/readyz").json()["checks"]["index"].get("pdq", 0)
    banks.create("ops-bank", actor="test")
    banks.add_entry("ops-bank", signal_type="pdq", value="f" * 64, actor="test")
    assert app_client.get("/readyz").json()["checks"]["index"]["pdq"] == before + 1
    assert f'safeguard_index_entries{{signal_type="pdq"}} {before + 1}.0' in app_client.get("/metrics").text
