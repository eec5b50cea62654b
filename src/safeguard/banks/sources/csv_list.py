"""CSV hash lists.

A header row is required. Recognised columns (case-insensitive; aliases in brackets):
``signal_type`` [type, hash_type, algorithm], ``value`` [hash, signal, signal_value],
``category``, ``source``, ``delete`` (true/1 to remove the entry). Any other column is kept as
provenance; a ``provenance`` column holding a JSON object (what export writes) is merged into it.
Lines starting with ``#`` are comments. A ``vpdq`` value may be a whole video in compact JSON form
(see ``signals/vpdq.py``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from safeguard import strictjson
from safeguard.banks.sources.base import HashListFormat, Row, RowError, make_rows
from safeguard.errors import SafeguardError

ALIASES = {
    "signal_type": ("signal_type", "type", "hash_type", "algorithm"),
    "value": ("value", "hash", "signal", "signal_value"),
    "category": ("category",),
    "source": ("source",),
    "delete": ("delete", "deleted"),
}
TRUE = {"1", "true", "yes", "y"}


class CSVHashList(HashListFormat):
    name = "csv"
    extensions = (".csv",)
    example = "signal_type,value,category\nmd5,d41d8cd98f00b204e9800998ecf8427e,A1\n"

    def parse(self, fp: TextIO) -> Iterator[Row | RowError]:
        lines = (line for line in fp)
        reader = csv.reader(lines)
        header: list[str] | None = None
        cols: dict[str, int] = {}
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a stray carriage return, an unterminated quote: this line only
                yield RowError(reader.line_num, f"not CSV: {exc}", "invalid_row")
                continue
            lineno = reader.line_num
            if not row or (row[0].lstrip().startswith("#")) or all(not c.strip() for c in row):
                continue
            if header is None:
                header = [h.strip().lower() for h in row]
                for key, names in ALIASES.items():
                    for n in names:
                        if n in header:
                            cols[key] = header.index(n)
                            break
                missing = [k for k in ("signal_type", "value") if k not in cols]
                if missing:
                    yield RowError(lineno, f"header lacks column(s) {missing}; got {header}", "bad_header")
                    return
                continue
            if len(row) != len(header):
                yield RowError(lineno, f"expected {len(header)} columns, got {len(row)}", "wrong_column_count")
                continue

            def get(key: str, row: list[str] = row) -> str | None:
                i = cols.get(key)
                v = row[i].strip() if i is not None else ""
                return v or None

            known = set(cols.values())
            provenance: dict[str, Any] = {
                header[i]: v for i, v in enumerate(row) if i not in known and v.strip() and header[i] != "provenance"
            }
            if "provenance" in header and row[header.index("provenance")].strip():
                try:
                    extra = strictjson.loads(row[header.index("provenance")], what="the provenance column")
                except SafeguardError:
                    extra = None
                if not isinstance(extra, dict):
                    yield RowError(lineno, "provenance column must hold a JSON object", "invalid_row")
                    continue
                provenance.update(extra)
            yield from make_rows(
                lineno,
                get("signal_type"),
                get("value"),
                category=get("category"),
                source=get("source"),
                provenance=provenance,
                delete=(get("delete") or "").lower() in TRUE,
            )
        if header is None:
            yield RowError(1, "empty hash list: no header row", "bad_header")

    def write(self, rows: Iterable[dict[str, Any]], fp: TextIO) -> int:
        fields = ["signal_type", "value", "category", "source", "added_at", "opinion", "enabled", "provenance"]
        w = csv.DictWriter(fp, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        n = 0
        for r in rows:
            prov = r.get("provenance")
            w.writerow({**r, "provenance": json.dumps(prov, sort_keys=True) if prov else ""})
            n += 1
        return n
