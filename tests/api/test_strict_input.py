"""Regression tests for the red team's findings on input parsing (issue 15, items 1, 7 and 8): each
replayed against the API now gets a 4xx JSON error with a code, never a 500 or plain text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from safeguard.api import create_app
from safeguard.config import Settings
from safeguard.engine import Engine
from tests.fuzz.harness import FuzzTarget, fuzz_target, json_endpoints
from tests.helpers.api import auth

ARABIC_ZEROS = "\u0660" * 64  # ARABIC-INDIC DIGIT ZERO x 64: int(v, 16) == 0, bytes.fromhex refuses it

#: (name, body bytes, expected status, expected code): the JSON pathologies of finding 7
PATHOLOGIES = [
    ("not_utf8", b'{"a": "\xff\xfe"}', 422, "invalid_encoding"),
    ("utf16", '{"a": 1}'.encode("utf-16"), 422, "invalid_encoding"),
    ("nan", b'{"a": NaN}', 422, "invalid_json"),
    ("infinity", b'{"a": Infinity}', 422, "invalid_json"),
    ("minus_infinity", b'{"a": -Infinity}', 422, "invalid_json"),
    ("float_overflow", b'{"a": 1e999}', 422, "invalid_json"),
    ("int_overflow", b'{"a": 123456789012345678901234567890}', 422, "invalid_json"),
    ("deep_100", b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", 422, "json_too_deep"),
    ("deep_2000", b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}", 422, "json_too_deep"),
    ("deep_objects", b'{"a":' * 1000 + b"1" + b"}" * 1000, 422, "json_too_deep"),
    ("lone_surrogate", b'{"a": "x\\ud800y"}', 422, "invalid_encoding"),
    ("lone_surrogate_key", b'{"\\udc00": 1}', 422, "invalid_encoding"),
    ("truncated", b'{"a": [1, 2', 422, "invalid_json"),
]


@pytest.fixture(scope="module")
def target() -> Iterator[FuzzTarget]:
    with fuzz_target() as t:
        yield t


@pytest.mark.parametrize(("name", "raw", "status", "code"), PATHOLOGIES, ids=[p[0] for p in PATHOLOGIES])
def test_json_pathology_on_every_json_endpoint(
    target: FuzzTarget, name: str, raw: bytes, status: int, code: str
) -> None:
    for method, path, role, _ in json_endpoints(target):
        r = target.client.request(
            method, path, headers={**target.headers(role), "Content-Type": "application/json"}, content=raw
        )
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json"), (path, r.headers)
        assert r.json()["error"]["code"] == code, (path, r.text)


def test_json_pathologies_in_jsonl_imports_are_row_errors(target: FuzzTarget) -> None:
    # (a file that is not UTF-8 at all is refused whole: 422 invalid_encoding)
    lines = [raw for name, raw, _, _ in PATHOLOGIES if raw.startswith(b'{"a"') and name != "not_utf8"]
    good = b'{"signal_type": "md5", "value": "' + b"e" * 32 + b'"}'
    r = target.client.post(
        f"/v1/banks/{target.bank}/import?format=jsonl",
        headers=target.headers("admin"),
        content=b"\n".join([*lines, good]),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added_or_updated"] == 1 and body["rejected"] == len(lines)
    codes = {e["code"] for e in body["errors"]}
    assert codes <= {"invalid_json", "invalid_encoding", "json_too_deep"} and len(codes) == 3, body["errors"]


def test_json_bodies_over_the_limit_are_413(settings: Settings, engine: Engine, keys: dict[str, str]) -> None:
    app = create_app(settings.with_(max_json_bytes=2000), engine=engine)
    with TestClient(app) as c:
        big = json.dumps({"signals": [{"type": "md5", "value": "0" * 32}] * 100}).encode()
        for path in ("/v1/scan", "/v1/scan/batch", "/v1/banks"):
            r = c.post(path, headers={**auth(keys["admin"]), "Content-Type": "application/json"}, content=big)
            assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", (path, r.text)
        # streamed without a Content-Length: counted as it arrives
        r = c.post(
            "/v1/banks",
            headers={**auth(keys["admin"]), "Content-Type": "application/json"},
            content=iter([big[:1000], big[1000:]]),
        )
        assert r.status_code == 413


# -- hex values (finding 1) -----------------------------------------------------------------------
BAD_HEX = {
    "arabic_indic": ARABIC_ZEROS,
    "fullwidth": "\uff10" * 64,
    "0x_prefix": "0x" + "a" * 62,
    "plus_sign": "+" + "a" * 63,
    "minus_sign": "-" + "a" * 63,
    "underscores": "a_" * 32,
    "inner_space": "a" * 31 + " " + "a" * 32,
    "not_hex": "g" * 64,
}


@pytest.mark.parametrize("value", BAD_HEX.values(), ids=BAD_HEX.keys())
def test_bad_hex_refused_by_api_entry_and_scans(target: FuzzTarget, value: str) -> None:
    for st in ("pdq", "vpdq", "sha256"):
        r = target.client.post(
            f"/v1/banks/{target.bank}/entries",
            headers=target.headers("moderator"),
            json={"signal_type": st, "value": value},
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_signal", (st, r.text)
        sig = {"type": st, "value": value}
        r = target.client.post("/v1/scan", headers=target.headers("platform"), json={"signals": [sig]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_signal", r.text
        r = target.client.post(
            "/v1/scan/batch", headers=target.headers("platform"), json={"items": [{"signals": [sig]}]}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_signal", r.text
    md5 = value[:32] if value != BAD_HEX["inner_space"] else "a" * 15 + " " + "a" * 16
    r = target.client.post(
        f"/v1/banks/{target.bank}/entries",
        headers=target.headers("moderator"),
        json={"signal_type": "md5", "value": md5},
    )
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_bad_hex_refused_by_imports(target: FuzzTarget, fmt: str) -> None:
    values = list(BAD_HEX.values())
    if fmt == "csv":
        body = "signal_type,value\n" + "".join(f"pdq,{v}\n" for v in values) + "pdq," + "12" * 32 + "\n"
    else:
        body = "".join(json.dumps({"signal_type": "pdq", "value": v}) + "\n" for v in values)
        body += json.dumps({"signal_type": "pdq", "value": "12" * 32}) + "\n"
    r = target.client.post(
        f"/v1/banks/{target.bank}/import?format={fmt}", headers=target.headers("admin"), content=body.encode()
    )
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["added_or_updated"] == 1 and res["rejected"] == len(values), res
    assert {e["code"] for e in res["errors"]} == {"invalid_signal"}
    # and matching still works afterwards
    r = target.client.post(
        "/v1/scan", headers=target.headers("platform"), json={"signals": [{"type": "pdq", "value": "12" * 32}]}
    )
    assert r.status_code == 200 and r.json()["verdict"] == "block", r.text


@pytest.mark.parametrize(
    "frame",
    ["{h},\u0663,1.000", "{h},+5,1.000", "{h},90,nan", "{h},90,inf", "{h},90,1_0", "{h},90,-1", "{h},1e2,1", "{h},90"],
)
def test_bad_vpdq_compact_frames_are_row_errors(target: FuzzTarget, frame: str) -> None:
    value = json.dumps([frame.format(h="ab" * 32)])
    line = json.dumps({"signal_type": "vpdq", "value": value})
    r = target.client.post(
        f"/v1/banks/{target.bank}/import?format=jsonl", headers=target.headers("admin"), content=line.encode()
    )
    assert r.status_code == 200 and r.json()["rejected"] == 1, r.text
    assert r.json()["errors"][0]["code"] == "invalid_signal"


def test_jsonl_delete_must_be_a_boolean(target: FuzzTarget) -> None:
    value = "34" * 32
    add = json.dumps({"signal_type": "pdq", "value": value})
    r = target.client.post(
        f"/v1/banks/{target.bank}/import?format=jsonl", headers=target.headers("admin"), content=add.encode()
    )
    assert r.json()["added_or_updated"] == 1
    # bool("false") is True: a string here used to delete the entry
    line = json.dumps({"signal_type": "pdq", "value": value, "delete": "false"})
    r = target.client.post(
        f"/v1/banks/{target.bank}/import?format=jsonl", headers=target.headers("admin"), content=line.encode()
    )
    assert r.json()["rejected"] == 1 and r.json()["deleted"] == 0, r.text


def test_hash_scan_numbers_finite_and_in_range(target: FuzzTarget) -> None:
    for sig in (
        {"type": "pdq", "value": "00" * 32, "timestamp": "NaN"},
        {"type": "pdq", "value": "00" * 32, "timestamp": "Infinity"},
        {"type": "pdq", "value": "00" * 32, "timestamp": -1},
        {"type": "pdq", "value": "00" * 32, "quality": 101},
        {"type": "pdq", "value": "00" * 32, "quality": -1},
    ):
        r = target.client.post("/v1/scan", headers=target.headers("platform"), json={"signals": [sig]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", (sig, r.text)


# -- thresholds (finding 8) --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"thresholds": {"pdq": -5}},
        {"review_thresholds": {"pdq": -1}},
        {"thresholds": {"pdq": 257}},
        {"thresholds": {"md5": 5}},
        {"thresholds": {"vpdq_query_percent": -5}},
        {"thresholds": {"vpdq_target_percent": 101}},
        {"thresholds": {"pdq": 50}, "review_thresholds": {"pdq": 40}},
        {"thresholds": {"pdq": 1.5}},
    ],
)
def test_bad_thresholds_refused_on_create_and_patch(target: FuzzTarget, body: dict[str, object]) -> None:
    r = target.client.post("/v1/banks", headers=target.headers("admin"), json={"name": "t-bank", **body})
    assert r.status_code == 422 and r.json()["error"]["code"] in ("invalid_threshold", "invalid_request"), r.text
    r = target.client.patch(f"/v1/banks/{target.bank}", headers=target.headers("admin"), json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] in ("invalid_threshold", "invalid_request"), r.text
    assert target.client.get(f"/v1/banks/{target.bank}", headers=target.headers("admin")).json()["thresholds"].get(
        "pdq", 31
    ) in range(0, 257)


# -- ids, lengths and unexpected errors ------------------------------------------------------------
def test_out_of_range_ids_and_strings_are_4xx(target: FuzzTarget) -> None:
    h = target.headers("admin")
    for path in (
        "/v1/entries/99999999999999999999",
        "/v1/banks/fuzz/entries?after_id=99999999999999999999",
        "/v1/events?after=-99999999999999999999",
        "/v1/cases/99999999999999999999",
    ):
        r = target.client.get(path, headers={**h, **target.headers("auditor" if "events" in path else "moderator")})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", (path, r.text)
    r = target.client.delete("/v1/webhooks/99999999999999999999", headers=h)
    assert r.status_code == 422
    # a bank named by other scripts' digits is a name, not an id
    assert target.client.get("/v1/banks/\u0661", headers=h).json()["error"]["code"] == "bank_not_found"
    assert target.client.get("/v1/banks/" + "9" * 40, headers=h).json()["error"]["code"] == "bank_not_found"
    r = target.client.post(
        f"/v1/banks/{target.bank}/entries",
        headers=target.headers("moderator"),
        json={"signal_type": "md5", "value": "7" * 32, "category": "c" * 65},
    )
    assert r.status_code == 422
    r = target.client.post(
        f"/v1/banks/{target.bank}/import?format=csv",
        headers=h,
        content=("signal_type,value,category\nmd5," + "8" * 32 + "," + "c" * 65 + "\n").encode(),
    )
    assert r.json()["rejected"] == 1 and r.json()["errors"][0]["code"] == "invalid_row"


def test_an_unexpected_error_is_a_json_500(settings: Settings, engine: Engine, keys: dict[str, str]) -> None:
    app = create_app(settings, engine=engine)

    def boom(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug")

    engine.get_decision = boom  # type: ignore[method-assign]
    engine.scan_async = boom  # type: ignore[assignment]
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/v1/decisions/x", headers=auth(keys["platform"]))
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error", r.text
        assert "a bug" not in r.text
        # the hash-only fast path answers in front of FastAPI: the same JSON 500
        r = c.post("/v1/scan", headers=auth(keys["platform"]), json={"signals": [{"type": "md5", "value": "0" * 32}]})
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error", r.text
