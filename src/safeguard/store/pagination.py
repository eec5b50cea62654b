"""Keyset pagination, shared by the list endpoints (cases, law-enforcement reports, statements of reasons).

A page is read with one row more than it shows: that extra row says whether a next page exists, and the
next page's cursor is the last shown row's sort key. A cursor is that key's fields joined by ``:``, in
url-safe base64 without padding: opaque to clients, and checked on the way back in (a cursor this API did
not give out is a 400 ``invalid_cursor``, never a 500 or a silent first page).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TypeVar

from safeguard.errors import InvalidInput

__all__ = ["MAX_PAGE", "clamp", "cut", "decode_cursor", "encode_cursor", "id_after"]

#: the most rows one page of cases or reports shows
MAX_PAGE = 200
#: the largest id a cursor may carry (a signed 64-bit column)
MAX_ID = 2**63

T = TypeVar("T")


def clamp(limit: int, most: int = MAX_PAGE) -> int:
    """A page size from 1 to ``most``."""
    return max(1, min(limit, most))


def encode_cursor(*key: int | str) -> str:
    return base64.urlsafe_b64encode(":".join(str(k) for k in key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parse: Callable[[list[str]], T]) -> T:
    """The key in ``cursor``: ``parse`` gets its ``:``-separated fields and raises ValueError on any key this
    API would not have given out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return parse(raw.split(":"))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API gave out", code="invalid_cursor") from exc


def id_after(cursor: str, tag: str) -> int:
    """The row id in a cursor of the form ``tag:id`` (as ``cut`` with ``lambda r: (tag, r.id)`` makes)."""

    def parse(fields: list[str]) -> int:
        got, num = fields
        i = int(num)
        if got != tag or not 0 <= i < MAX_ID:
            raise ValueError(fields)
        return i

    return decode_cursor(cursor, parse)


def cut(rows: Sequence[T], limit: int, key: Callable[[T], tuple[int | str, ...]]) -> tuple[list[T], str | None]:
    """The first ``limit`` of ``rows`` (read with a limit of ``limit + 1``) and, when more follow, the cursor
    after the last of them (its sort ``key``)."""
    page = list(rows[:limit])
    return page, (encode_cursor(*key(page[-1])) if len(rows) > limit and page else None)
