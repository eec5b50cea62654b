"""What the ledger costs: the row digest on every recorded decision, and ``events verify`` over a log.

The digest (``safeguard.ledger.decision_digest``) runs once per decision on the recording path; it is
timed on an ``allow`` and on a ``block`` decision's row (best of ``--repeat`` runs). Checkpoints are
signed once per interval, never per event: one signature is timed too. Then ``--decisions`` hash-only
decisions (one in ``--block-every`` matches a bank: block, case, webhook) are recorded in a fresh
SQLite database through ``Engine.scan_many_async`` (group commits), and :func:`safeguard.ledger.verify`
is timed over the whole log: chain, a stored checkpoint, every decision row against its event.

    python -m bench.ledger_bench [--decisions 20000] [--block-every 50] [--repeat 15]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets as pysecrets
import tempfile
import time
import timeit

from safeguard import events, ledger
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine, _decision_row

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def content(value: str, i: int) -> Content:
    return Content(kind=ContentKind.HASHES, signals=(Signal("pdq", value, 100),), content_id=f"c{i}", user_id="u")


def best_us(fn: object, repeat: int, number: int = 2000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decisions", type=int, default=20_000)
    ap.add_argument("--block-every", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        e = Engine(Settings(data_dir=d, run_worker=False, index_refresh_seconds=0.0))
        BankService(e.db).create("csam", actor="bench")
        BankService(e.db).add_entry("csam", signal_type="pdq", value=PDQ, actor="bench")
        allow_c, block_c = content(pysecrets.token_hex(32), 0), content(PDQ, 1)
        rows = {"allow": _decision_row(allow_c, e.scan(allow_c)), "block": _decision_row(block_c, e.scan(block_c))}
        for name, row in rows.items():
            print(f"row digest, {name} decision: {best_us(lambda r=row: ledger.decision_digest(r), a.repeat):.1f} us")
        signer = ledger.Signer.from_settings(e.settings)
        sign_us = best_us(lambda: signer.sign(1, "0" * 64, ledger.utcnow()), a.repeat, 200)
        print(f"one checkpoint signature: {sign_us:.1f} us")

        items = [content(PDQ if i % a.block_every == 0 else pysecrets.token_hex(32), i) for i in range(a.decisions)]

        async def record() -> None:
            for i in range(0, len(items), 256):
                await e.scan_many_async(items[i : i + 256])

        t = time.perf_counter()
        asyncio.run(record())
        print(f"recorded {a.decisions} decisions in {time.perf_counter() - t:.1f} s")
        ledger.checkpoint(e.db, signer)
        t = time.perf_counter()
        with e.db.read() as s:
            chain = events.verify(s)
        dt = time.perf_counter() - t
        print(
            f"the chain alone (events.verify): {chain.checked} events in {dt:.2f} s ({chain.checked / dt:,.0f} events/s)"
        )
        t = time.perf_counter()
        with e.db.read() as s:
            r = ledger.verify(s, trusted=[signer.public])
        dt = time.perf_counter() - t
        print(
            f"verify: ok={r.ok}, {r.chain.checked} events, {r.decisions_checked} decisions, "
            f"{r.checkpoints_checked} checkpoint in {dt:.2f} s ({r.chain.checked / dt:,.0f} events/s)"
        )
        e.close()


if __name__ == "__main__":
    main()
