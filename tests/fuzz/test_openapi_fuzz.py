"""Every operation of the OpenAPI document, fuzzed with schemathesis (in process, offline): requests
that follow the schema (positive) and requests that break it (negative), with free and with existing
path ids. No answer may be a 5xx, and every error is the API's JSON with a code."""

from __future__ import annotations

import pytest

from tests.fuzz.harness import FuzzTarget, Tally, fuzz_operation, openapi_operations

#: generated requests per operation and mode in CI (bench/fuzz.py runs as many as its time allows)
EXAMPLES = 8


@pytest.mark.parametrize("negative", [False, True], ids=["positive", "negative"])
def test_openapi_operations_never_5xx(target: FuzzTarget, negative: bool) -> None:
    tally = Tally()
    ops = openapi_operations(target)
    assert len(ops) >= 25  # the document lists the API (scan, banks, entries, records, admin, ...)
    for k, op in enumerate(ops):
        fuzz_operation(target, op, tally, examples=EXAMPLES, seed=k, negative=negative)
        if op.path_parameters and not negative:  # existing ids too, so that requests reach past the lookup
            fuzz_operation(target, op, tally, examples=EXAMPLES, seed=100 + k, negative=negative, known_paths=True)
    assert not tally.found, tally.found[:10]
    assert not tally.slow, tally.slow[:10]
    assert sum(tally.tried.values()) >= len(ops) * EXAMPLES // 2
