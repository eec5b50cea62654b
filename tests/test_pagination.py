"""Keyset pagination's cursors and page cut (safeguard.store.pagination), shared by the list endpoints of
cases, reports and statements. Cursors already handed out must keep working: their form is pinned here."""

from __future__ import annotations

import base64

import pytest

from safeguard.errors import InvalidInput
from safeguard.store import pagination


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_is_its_key_fields_in_unpadded_urlsafe_base64() -> None:
    assert pagination.encode_cursor("r", 41) == _b64("r:41") == "cjo0MQ"
    assert pagination.encode_cursor(3, 1234) == _b64("3:1234")
    assert pagination.id_after(pagination.encode_cursor("s", 2**63 - 1), "s") == 2**63 - 1


@pytest.mark.parametrize(
    "cursor",
    [_b64("s:5"), _b64("r:-1"), _b64(f"r:{2**63}"), _b64("r"), _b64("r:5:6"), _b64("r:x"), "%%%", "\u00e9", "gA"],
)
def test_a_cursor_this_api_did_not_give_out_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput) as e:
        pagination.id_after(cursor, "r")
    assert e.value.code == "invalid_cursor"


def test_cut_keeps_limit_rows_and_says_where_the_next_page_starts() -> None:
    rows = [(1, 10), (1, 11), (2, 3)]
    page, nxt = pagination.cut(rows, 2, lambda r: r)
    assert page == [(1, 10), (1, 11)] and nxt == _b64("1:11")
    assert pagination.cut(rows, 3, lambda r: r) == (rows, None)  # nothing beyond the page: no cursor
    assert pagination.cut([], 5, lambda r: r) == ([], None)


def test_clamp() -> None:
    assert [pagination.clamp(n) for n in (-5, 0, 1, 50, 10_000)] == [1, 1, 1, 50, pagination.MAX_PAGE]
    assert pagination.clamp(500, most=100) == 100
