"""The page format on its own: what a reader accepts, what it refuses, and that it refuses early."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from safeguard.exchange.wire import MAX_LINE, ExchangeError, PageReader, entry_line, summary

KEY = Ed25519PrivateKey.generate()


def md5(i: int) -> str:
    return hashlib.md5(str(i).encode()).hexdigest()


def header(bank: str = "b", cursor: str = "") -> bytes:
    return (json.dumps({"type": "page", "version": 1, "bank": bank, "cursor": cursor, "key_id": "k"}) + "\n").encode()


def entry(i: int, op: str = "upsert", prov: str = "{}") -> bytes:
    return entry_line(op, "md5", md5(i), "A1", "src", prov, "none", "2026-12-06T00:00:00+00:00")


def page(lines: list[bytes], *, more: bool = False, nxt: str = "1.1.x", key: Ed25519PrivateKey = KEY) -> bytes:
    h = hashlib.sha256(b"".join(lines)).hexdigest()
    count = len(lines) - 1
    sig = base64.b64encode(key.sign(summary(h, count, nxt, more))).decode()
    end = {"type": "end", "count": count, "next_cursor": nxt, "more": more, "sha256": h, "signature": sig}
    return b"".join(lines) + (json.dumps(end) + "\n").encode()


def read(data: bytes | list[bytes], *, cursor: str = "", max_entries: int = 100) -> object:
    chunks = [data] if isinstance(data, bytes) else data
    return PageReader(KEY.public_key(), bank="b", cursor=cursor, max_entries=max_entries).read(chunks)


def code_of(data: bytes | list[bytes], **kw: object) -> str:
    with pytest.raises(ExchangeError) as exc:
        read(data, **kw)  # type: ignore[arg-type]
    return exc.value.code


def test_a_good_page_reads_in_any_chunking() -> None:
    data = page([header(), entry(1), entry(2, "remove"), entry(3, prov='{"video":"x"}')], more=True)
    for size in (1, 7, 64, len(data)):
        p = read([data[i : i + size] for i in range(0, len(data), size)])
        assert [(r.value, r.delete) for r in p.rows] == [(md5(1), False), (md5(2), True), (md5(3), False)]  # type: ignore[attr-defined]
        assert p.more and p.next_cursor == "1.1.x" and p.rows[2].provenance == {"video": "x"}  # type: ignore[attr-defined]


def test_entries_in_another_key_order_take_the_slow_path_and_still_verify() -> None:
    other = (
        json.dumps(
            {"value": md5(5).upper(), "type": "entry", "op": "upsert", "signal_type": "md5", "category": None}
            | {"source": "s", "provenance": {}, "opinion": "none", "added_at": "t"}
        )
        + "\n"
    ).encode()
    p = read(page([header(), entry(1), other, entry(2)]))
    assert [r.value for r in p.rows] == [md5(1), md5(5), md5(2)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (page([header(), entry(1)], key=Ed25519PrivateKey.generate()), "exchange_bad_signature"),
        (page([header(), entry(1)]).replace(b"A1", b"A2", 1), "exchange_bad_signature"),
        (page([header(), entry(1)]).replace(b'"more": false', b'"more": true'), "exchange_bad_signature"),
        (page([header(), entry(1)]).replace(b'"1.1.x"', b'"9.9.x"'), "exchange_bad_signature"),
        (page([header(), entry(1)])[:-30], "exchange_page_truncated"),
        (page([header(), entry(1)]).rsplit(b"\n", 2)[0] + b"\n", "exchange_page_truncated"),
        (b"", "exchange_page_truncated"),
        (page([header(), b"{not json}\n"]), "exchange_page_malformed"),
        (page([header(), entry(1).replace(b"A1", b"NaN").replace(b'"NaN"', b"NaN")]), "exchange_page_malformed"),
        (page([header(), entry_line("upsert", "md5", "zz", None, "s", "{}", "none", "t")]), "exchange_page_malformed"),
        (page([header(), entry_line("upsert", "nope", "aa", None, "s", "{}", "none", "t")]), "exchange_page_malformed"),
        (page([header(), entry(1).replace(b'"upsert"', b'"explode"')]), "exchange_page_malformed"),
        (page([header(), entry(1, prov="[1]")]), "exchange_page_malformed"),
        (page([header(), entry(1)]) + entry(2), "exchange_page_malformed"),
        (page([header(bank="other"), entry(1)]), "exchange_page_replayed"),
        (page([header(cursor="5.5.x"), entry(1)]), "exchange_page_replayed"),
        (page([b'{"type":"page","version":2,"bank":"b","cursor":""}\n', entry(1)]), "exchange_page_malformed"),
    ],
)
def test_bad_pages_are_refused(data: bytes, code: str) -> None:
    assert code_of(data) == code


def test_the_count_must_match() -> None:
    lines = [header(), entry(1), entry(2)]
    h = hashlib.sha256(b"".join(lines)).hexdigest()
    sig = base64.b64encode(KEY.sign(summary(h, 1, "c", False))).decode()
    end = {"type": "end", "count": 1, "next_cursor": "c", "more": False, "sha256": h, "signature": sig}
    assert code_of(b"".join(lines) + json.dumps(end).encode()) == "exchange_page_malformed"


def test_a_huge_page_is_refused_at_the_first_extra_entry_without_reading_the_rest() -> None:
    pulled = 0

    def endless() -> Iterator[bytes]:
        nonlocal pulled
        yield header()
        i = 0
        while True:  # a "page" of unbounded length: the reader must stop on its own
            pulled += 1
            yield b"".join(entry(i + k) for k in range(100))
            i += 100

    assert code_of(endless(), max_entries=5000) == "exchange_page_too_large"
    assert pulled <= 51  # 5,000 entries and one chunk more, not the millions on offer


def test_a_line_without_end_is_refused_at_the_line_limit() -> None:
    pulled = 0

    def one_long_line() -> Iterator[bytes]:
        nonlocal pulled
        yield header()
        while True:
            pulled += 1
            yield b"a" * 4096

    assert code_of(one_long_line()) == "exchange_page_malformed"
    assert pulled * 4096 <= MAX_LINE + 8192


def test_a_feed_that_says_more_without_moving_is_not_followed_forever() -> None:
    import httpx

    from safeguard.banks.sources.partner import PartnerFeedSource
    from safeguard.egress import EgressPolicy

    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params["cursor"]
        asked.append(cursor)
        return httpx.Response(200, content=page([header(cursor=cursor)], more=True, nxt=cursor))

    src = PartnerFeedSource(
        subscription="a",
        base_url="http://partner.example",
        remote_bank="b",
        api_key="sg_000000000000_x",
        public_key=KEY.public_key(),
        policy=EgressPolicy(),
        client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    it = src.fetch_iter(None)
    rows, _cp = next(it)
    assert rows == []
    with pytest.raises(ExchangeError) as exc:
        next(it)
    assert exc.value.code == "exchange_page_malformed" and asked == [""]


def test_entry_lines_match_entry_line_byte_for_byte() -> None:
    """The feed's lean line writer gives exactly :func:`entry_line`'s bytes (the signed digest covers
    them), over repeated and distinct runs, odd strings, removals and a memo that is emptied midway."""
    from datetime import UTC, datetime

    from safeguard.exchange.feed import _iso
    from safeguard.exchange.wire import EntryLines

    times: list[object] = ["2026-12-06 18:25:18.500000", datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC), "not a time"]
    cats = [None, "A1", 'quo"te', "é-ü"]
    srcs = ["", None, "exchange:a", "line\nbreak"]
    rows = [
        (
            k,
            "md5" if k % 5 else "pdq",
            md5(k) if k % 7 else 'odd "value" \u2028 é',
            cats[k % len(cats)],
            srcs[k % len(srcs)],
            ['{"list": "x"}', "", None, '{"exchange": {"partner": "p"}}'][k % 4],
            ["none", None, "confirmed"][k % 3],
            times[k % len(times)],
            [1, 0, True, False][k % 4],
        )
        for k in range(3000)
    ]
    want = b"".join(
        entry_line("upsert" if en else "remove", st, v, cat, src or "", pv or "{}", op or "none", _iso(at))
        for (_i, st, v, cat, src, pv, op, at, en) in rows
    )
    lines = EntryLines(_iso)
    lines.MEMO = 16  # forgets its runs several times over the page
    got = b"".join(lines.chunk(rows[a : a + 500]) for a in range(0, len(rows), 500))
    assert got == want
    for line in got.splitlines():
        json.loads(line)  # each line is JSON on its own
