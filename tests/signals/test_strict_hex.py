"""Hex values are ASCII hex of the exact length, nothing else that ``int(v, 16)`` would take."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard.errors import InvalidInput
from safeguard.signals import get_signal_type
from safeguard.signals.base import noncanonical_hex, validate_hex

LENGTHS = {"pdq": 64, "vpdq": 64, "sha256": 64, "md5": 32}
HEX = re.compile(r"[0-9a-fA-F]*")


@pytest.mark.parametrize("name", LENGTHS)
@pytest.mark.parametrize(
    "make",
    [
        lambda n: "\u0660" * n,  # Arabic-Indic digits
        lambda n: "\u06f0" * n,  # Extended Arabic-Indic
        lambda n: "\uff10" * n,  # fullwidth
        lambda n: "\u0966" * n,  # Devanagari
        lambda n: "0x" + "a" * (n - 2),
        lambda n: "+" + "a" * (n - 1),
        lambda n: "-" + "a" * (n - 1),
        lambda n: "a_" * (n // 2),
        lambda n: "a" * (n - 1) + "\u212a",  # KELVIN SIGN: lowercases to ASCII "k"
        lambda n: "a" * (n // 2) + " " + "a" * (n // 2 - 1),
        lambda n: "a" * (n - 1),
        lambda n: "a" * (n + 1),
        lambda n: "\u00a0" + "a" * n,  # a non-ASCII space around the value
    ],
)
def test_every_signal_type_refuses(name: str, make: object) -> None:
    st_ = get_signal_type(name)
    value = make(LENGTHS[name])  # type: ignore[operator]
    with pytest.raises(InvalidInput) as err:
        st_.validate(value)
    assert err.value.code == "invalid_signal"
    assert st_.noncanonical([value]) == [0]


@pytest.mark.parametrize("name", LENGTHS)
def test_canonical_form(name: str) -> None:
    st_ = get_signal_type(name)
    n = LENGTHS[name]
    assert st_.validate(" \t" + "AB" * (n // 2) + "\r\n") == "ab" * (n // 2)
    assert st_.noncanonical(["ab" * (n // 2), "AB" * (n // 2), "ab" * (n // 2)]) == [1]
    assert st_.noncanonical([]) == []


@settings(max_examples=500, deadline=None, database=None, derandomize=True)
@given(st.text(min_size=60, max_size=68) | st.text(alphabet=string.hexdigits + "xX_+- ", min_size=62, max_size=66))
def test_validate_accepts_exactly_ascii_hex(value: str) -> None:
    core = value.strip(" \t\r\n")
    ok = len(core) == 64 and core.isascii() and HEX.fullmatch(core) is not None
    try:
        out = validate_hex(value, name="pdq", nchars=64)
    except InvalidInput:
        assert not ok
    else:
        assert ok and out == core.lower() and bytes.fromhex(out) is not None
        assert noncanonical_hex([out], 64) == []


def test_noncanonical_hex_finds_each_bad_value_in_a_batch() -> None:
    good = "0f" * 32
    values = [good, "\u0660" * 64, good, "0x" + "f" * 62, good.upper(), good]
    assert noncanonical_hex(values, 64) == [1, 3, 4]
