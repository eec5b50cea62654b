"""safeguard.strictjson: each way Python's json module is too lenient, refused with its code."""

from __future__ import annotations

import pytest

from safeguard import strictjson
from safeguard.errors import SafeguardError

CASES = [
    (b"NaN", "invalid_json"),
    (b'{"a": Infinity}', "invalid_json"),
    (b"[-Infinity]", "invalid_json"),
    (b"1e999", "invalid_json"),
    (b"-1e400", "invalid_json"),
    (b"9223372036854775808", "invalid_json"),
    (b"-9223372036854775809", "invalid_json"),
    (b"1" * 5000, "invalid_json"),
    (b"[" * 33 + b"]" * 33, "json_too_deep"),
    (b"[" * 5000 + b"]" * 5000, "json_too_deep"),
    (b'{"a":' * 2000 + b"1" + b"}" * 2000, "json_too_deep"),
    (b'"\\ud800"', "invalid_encoding"),
    (b'{"\\udfff": 1}', "invalid_encoding"),
    (b'["ok", "\\ud83d"]', "invalid_encoding"),
    (b'"\xff"', "invalid_encoding"),
    (b'"\xed\xa0\x80"', "invalid_encoding"),  # a surrogate encoded as UTF-8 bytes (CESU)
    ('{"a": 1}'.encode("utf-16"), "invalid_encoding"),
    (b"{", "invalid_json"),
    (b"", "invalid_json"),
    (b"[1,]", "invalid_json"),
]


@pytest.mark.parametrize(("raw", "code"), CASES)
def test_refused_with_its_code(raw: bytes, code: str) -> None:
    with pytest.raises(SafeguardError) as err:
        strictjson.loads(raw)
    assert err.value.code == code and err.value.status == 422


def test_accepts_what_json_is() -> None:
    assert strictjson.loads(b'{"a": [1, -2.5e3, "\\u00e9\\ud83d\\ude00", true, null]}') == {
        "a": [1, -2500.0, "é😀", True, None]
    }
    assert strictjson.loads("\ufeff[]".encode()) == []  # a UTF-8 BOM is allowed
    assert strictjson.loads(b"[" * 32 + b"]" * 32) is not None  # exactly the limit
    assert strictjson.loads(b"9223372036854775807") == 2**63 - 1


def test_size_limit_is_413() -> None:
    with pytest.raises(SafeguardError) as err:
        strictjson.loads(b"[" + b"1," * 600 + b"1]", max_bytes=1000)
    assert err.value.status == 413 and err.value.code == "payload_too_large"


def test_depth_limit_is_configurable() -> None:
    assert strictjson.loads(b"[[[1]]]", max_depth=3) == [[[1]]]
    with pytest.raises(SafeguardError):
        strictjson.loads(b"[[[1]]]", max_depth=2)
