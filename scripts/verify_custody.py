#!/usr/bin/env python3
"""Verify the chain of custody in an unpacked ``safeguard evidence export`` (Python standard library only).

    unzip case-42.zip -d case-42 && cd case-42
    sha256sum -c manifest.sha256
    openssl pkeyutl -verify -pubin -inkey signer.pem -rawin -in manifest.sha256 -sigfile manifest.sig
    python3 verify_custody.py .            # this script

Recomputes every custody event's hash (SHA-256 over the previous hash and the event's canonical JSON:
sorted keys, no whitespace, non-ASCII kept) and checks every link of the chain proof from the first
custody event to the head: any edited, inserted or removed event shows up.
"""

import hashlib
import itertools
import json
import sys
from pathlib import Path


def canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def main(folder: str) -> int:
    d = Path(folder)
    custody = json.loads((d / "custody.json").read_text(encoding="utf-8"))
    chain = json.loads((d / "chain.json").read_text(encoding="utf-8"))
    by_seq = {c["seq"]: c for c in chain}
    bad = 0
    for prev, cur in itertools.pairwise(chain):
        if cur["seq"] != prev["seq"] + 1 or cur["prev_hash"] != prev["hash"]:
            print(f"chain broken at seq {cur['seq']}")
            bad += 1
    for e in custody:
        body = {k: e[k] for k in ("seq", "created_at", "type", "actor", "subject_kind", "subject_id", "payload")}
        h = hashlib.sha256((e["prev_hash"] + canonical(body)).encode()).hexdigest()
        link = by_seq.get(e["seq"])
        if h != e["hash"] or link is None or link["hash"] != h or link["prev_hash"] != e["prev_hash"]:
            print(f"event {e['seq']} ({e['type']}) does not match its hash or the chain")
            bad += 1
    head = chain[-1] if chain else None
    print(
        f"{len(custody)} custody events, {len(chain)} chain links, head {head['hash'] if head else '-'}: "
        + ("OK" if not bad else f"{bad} problems")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
