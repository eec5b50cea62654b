"""JSON Lines hash lists: one object per line.

``{"signal_type": "pdq", "value": "<64 hex>", "category": "A1", "source": "ncmec",
"provenance": {...}, "delete": false}``. A ``vpdq`` row may carry a whole video as a compact JSON
list of frames (a string, or the list itself); it becomes one entry per distinct frame. ``type``/``hash`` are accepted for ``signal_type``/``value``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from safeguard import strictjson
from safeguard.banks.sources.base import HashListFormat, Row, RowError, make_rows
from safeguard.errors import SafeguardError


class JSONLHashList(HashListFormat):
    name = "jsonl"
    extensions = (".jsonl", ".ndjson")
    example = '{"signal_type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e", "category": "A1"}\n'

    def parse(self, fp: TextIO) -> Iterator[Row | RowError]:
        for lineno, line in enumerate(fp, start=1):
            if not line.strip():
                continue
            try:
                obj = strictjson.loads(line, what=f"line {lineno}")
            except SafeguardError as exc:  # not JSON, NaN, too deep, a lone surrogate: see safeguard/strictjson.py
                yield RowError(lineno, exc.message, exc.code)
                continue
            if not isinstance(obj, dict):
                yield RowError(lineno, "each line must be a JSON object", "invalid_json")
                continue
            prov = obj.get("provenance") or {}
            if not isinstance(prov, dict):
                yield RowError(lineno, "provenance must be an object", "invalid_row")
                continue
            st = obj.get("signal_type", obj.get("type"))
            value = obj.get("value", obj.get("hash"))
            if isinstance(value, list):  # a vpdq video given as the list itself
                value = json.dumps(value)
            if not isinstance(st, str | None) or not isinstance(value, str | None):
                yield RowError(lineno, "signal_type and value must be strings", "invalid_row")
                continue
            cat = obj.get("category")
            src = obj.get("source")
            delete = obj.get("delete", False)
            if not isinstance(delete, bool):  # bool("false") is True: a string here would delete the entry
                yield RowError(lineno, "delete must be true or false", "invalid_row")
                continue
            yield from make_rows(
                lineno,
                st,
                value,
                category=str(cat) if cat is not None else None,
                source=str(src) if src is not None else None,
                provenance=prov,
                delete=delete,
            )

    def write(self, rows: Iterable[dict[str, Any]], fp: TextIO) -> int:
        n = 0
        for r in rows:
            fp.write(json.dumps(r, sort_keys=True, default=str) + "\n")
            n += 1
        return n
