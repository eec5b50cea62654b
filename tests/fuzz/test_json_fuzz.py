"""JSON that comes from outside: the strict parser's properties (hypothesis), and mutated or
pathological bodies sent to every JSON endpoint and as JSON Lines hash lists."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safeguard import strictjson
from safeguard.errors import SafeguardError
from tests.fuzz.harness import FuzzTarget, json_endpoints, mutate, mutate_json, problems

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)

# Text without surrogates (what strict UTF-8 can carry), numbers within the parser's ranges.
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=strictjson.INT64_MIN, max_value=strictjson.INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=30,
)


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


@FAST
@given(json_values)
def test_valid_json_round_trips(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode()
    if _depth(value) > strictjson.DEFAULT_MAX_DEPTH:
        with pytest.raises(SafeguardError):
            strictjson.loads(raw)
        return
    assert strictjson.loads(raw) == value
    assert strictjson.loads(json.dumps(value)) == value  # \u escapes of non-ASCII text too


@FAST
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_refuse_with_a_code(raw: bytes) -> None:
    try:
        value = strictjson.loads(raw)
    except SafeguardError as exc:
        assert exc.code in ("invalid_json", "invalid_encoding", "json_too_deep") and 400 <= exc.status < 500
        return
    # what it accepts is JSON a strict encoder writes back: finite, UTF-8 encodable
    json.dumps(value, allow_nan=False).encode("utf-8")


@FAST
@given(st.lists(st.sampled_from(["[", "]", "{", "}", '"a":', "1", ",", "NaN", "1e999", '"\\ud800"', "-"]), max_size=60))
def test_bracket_soup_never_escapes_as_another_error(parts: list[str]) -> None:
    try:
        v = strictjson.loads("".join(parts))
    except SafeguardError:
        return
    assert not isinstance(v, float) or math.isfinite(v)


@pytest.mark.parametrize("index", range(10))
def test_mutated_json_bodies_never_5xx(target: FuzzTarget, index: int) -> None:
    endpoints = json_endpoints(target)
    method, path, role, body = endpoints[index]
    if path == "/v1/streams":
        body = {"url": "not a url", "stream_id": ""}  # never a URL FFmpeg could reach
    seed = json.dumps(body).encode()
    rng = random.Random(f"json-{path}")
    failures = []
    statuses: set[int] = set()
    for k in range(80):
        # byte-level (mostly the parser) and structural (mostly validation and the engine) in turn
        _, raw = (mutate(seed, rng) if k % 2 else mutate_json(body, rng)) if k else ([], seed)
        if path == "/v1/streams" and b"://" in raw:
            continue
        r = target.client.request(
            method, path, headers={**target.headers(role), "Content-Type": "application/json"}, content=raw
        )
        statuses.add(r.status_code)
        bad = problems(r.status_code, r.headers.get("content-type"), r.content)
        if bad:
            failures.append((raw[:200], r.status_code, bad))
    assert not failures, failures
    assert len(statuses) > 1, (path, statuses)  # the seed body is accepted, and not every mutation refused


@settings(max_examples=60, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(value=json_values, where=st.sampled_from(["context", "provenance"]))
def test_generated_json_in_free_form_fields_never_5xx(target: FuzzTarget, value: Any, where: str) -> None:
    if where == "context":
        path, role = "/v1/scan", "platform"
        body = {"signals": [{"type": "md5", "value": "0" * 32}], "context": {"x": value}}
    else:
        path, role = f"/v1/banks/{target.bank}/entries", "moderator"
        body = {"signal_type": "md5", "value": "1" * 32, "provenance": {"x": value}}
    r = target.client.post(path, headers=target.headers(role), content=json.dumps(body))
    assert not problems(r.status_code, r.headers.get("content-type"), r.content), r.text


def test_mutated_jsonl_hash_lists_never_5xx(target: FuzzTarget) -> None:
    lines = [
        {"signal_type": "pdq", "value": "0f" * 32, "category": "A1", "provenance": {"n": 1}},
        {"signal_type": "vpdq", "value": [f"{'1e' * 32},90,{t}.000" for t in range(3)]},
        {"signal_type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e", "delete": True},
    ]
    seed = "\n".join(json.dumps(x) for x in lines).encode()
    rng = random.Random("jsonl")
    for _ in range(60):
        _, raw = mutate(seed, rng)
        r = target.client.post(
            f"/v1/banks/{target.bank}/import?format=jsonl",
            headers={**target.headers("admin"), "Content-Type": "application/x-ndjson"},
            content=raw,
        )
        assert not problems(r.status_code, r.headers.get("content-type"), r.content), (raw[:200], r.text)
