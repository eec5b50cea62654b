"""Hash-list formats: a contract for every registered format, and malformed input reported by line."""

from __future__ import annotations

import io

import pytest

from safeguard import registry
from safeguard.banks.sources.base import HashListFormat, Row, RowError
from safeguard.banks.sources.csv_list import CSVHashList
from safeguard.banks.sources.jsonl_list import JSONLHashList

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.mark.parametrize("name", registry.sources.names())
def test_format_contract(name: str) -> None:
    fmt = registry.sources.get(name)()
    assert isinstance(fmt, HashListFormat)
    rows = list(fmt.parse(io.StringIO(fmt.example)))
    assert rows and all(isinstance(r, Row) for r in rows)
    out = io.StringIO()
    n = fmt.write(
        [{"signal_type": r.signal_type, "value": r.value, "category": r.category, "source": r.source} for r in rows],
        out,
    )
    assert n == len(rows)
    again = [r for r in fmt.parse(io.StringIO(out.getvalue())) if isinstance(r, Row)]
    assert [(r.signal_type, r.value, r.category) for r in again] == [(r.signal_type, r.value, r.category) for r in rows]


def test_csv_good_and_bad_rows_with_line_numbers() -> None:
    text = (
        "# a comment\n"
        "hash_type,hash,category,case_ref\n"
        f"pdq,{PDQ.upper()},A1,X-1\n"
        "md5,not-hex-at-all-not-hex-at-all!!,A2,X-2\n"
        "sha1,abc,B1,X-3\n"
        "md5,d41d8cd98f00b204e9800998ecf8427e\n"
        ",d41d8cd98f00b204e9800998ecf8427e,B2,\n"
        "md5,d41d8cd98f00b204e9800998ecf8427e,B2,X-4\n"
    )
    got = list(CSVHashList().parse(io.StringIO(text)))
    rows = [g for g in got if isinstance(g, Row)]
    errors = {g.line: g.code for g in got if isinstance(g, RowError)}
    assert [(r.line, r.signal_type, r.value, r.category) for r in rows] == [
        (3, "pdq", PDQ, "A1"),
        (8, "md5", "d41d8cd98f00b204e9800998ecf8427e", "B2"),
    ]
    assert rows[0].provenance == {"case_ref": "X-1"}
    assert errors == {4: "invalid_signal", 5: "unknown_signal", 6: "wrong_column_count", 7: "missing_field"}


def test_csv_without_required_header() -> None:
    got = list(CSVHashList().parse(io.StringIO("foo,bar\n1,2\n")))
    assert len(got) == 1 and isinstance(got[0], RowError) and got[0].code == "bad_header"
    assert isinstance(next(iter(CSVHashList().parse(io.StringIO("")))), RowError)


def test_jsonl_rows_errors_and_deletes() -> None:
    text = "\n".join(
        [
            f'{{"signal_type": "pdq", "value": "{PDQ}", "category": "A1", "provenance": {{"list": "demo"}}}}',
            '{"type": "md5", "hash": "d41d8cd98f00b204e9800998ecf8427e", "delete": true}',
            "{not json",
            "[1, 2]",
            '{"signal_type": "pdq", "value": "00"}',
            '{"signal_type": "pdq", "value": 5}',
        ]
    )
    got = list(JSONLHashList().parse(io.StringIO(text)))
    assert isinstance(got[0], Row) and got[0].provenance == {"list": "demo"}
    assert isinstance(got[1], Row) and got[1].delete
    assert [(g.line, g.code) for g in got[2:] if isinstance(g, RowError)] == [
        (3, "invalid_json"),
        (4, "invalid_json"),
        (5, "invalid_signal"),
        (6, "invalid_row"),
    ]
