"""What a transparency report costs: building it (every figure from the event log), rendering HTML and CSV,
and verifying it, over ``--decisions`` recorded decisions.

Hash-only decisions are recorded in a fresh SQLite database through ``Engine.scan_many_async`` (group
commits); one in ``--block-every`` matches a bank (block, a case, evidence, a webhook); ``--decide`` of
those cases are then claimed and decided by a moderator (alternately confirmed and not violating), so the
report's case, list-quality and time-to-action figures have work to do. One decision in ``--territory-every``
is on a user in DE, so the scoped reports (``--territory DE``, ``--tenant default``) are timed too. Each
step is timed once.

    python bench/transparency_bench.py [--decisions 100000] [--block-every 50] [--decide 500]
        [--territory-every 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets as pysecrets
import tempfile
import time
from datetime import UTC, datetime

from safeguard.accounts import Who
from safeguard.banks import BankService
from safeguard.cases import CaseService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine
from safeguard.transparency import Scope, build, parse_period, render
from safeguard.transparency.report import verify

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MOD = Who("user:bench", "moderator", "bench", "user", 1)


def content(value: str, i: int, territory: str | None = None) -> Content:
    # one user per match, so that each match opens its own case
    return Content(
        kind=ContentKind.HASHES,
        signals=(Signal("pdq", value, 100),),
        content_id=f"c{i}",
        user_id=f"u{i}",
        territory=territory,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decisions", type=int, default=100_000)
    ap.add_argument("--block-every", type=int, default=50)
    ap.add_argument("--decide", type=int, default=500)
    ap.add_argument("--territory-every", type=int, default=2, help="one decision in N on a user in DE")
    ap.add_argument("--out", help="also write the JSON report here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        e = Engine(Settings(data_dir=d, run_worker=False, index_refresh_seconds=0.0))
        BankService(e.db).create("csam", actor="bench", default_category="A1")
        BankService(e.db).add_entry("csam", signal_type="pdq", value=PDQ, actor="bench")
        items = [
            content(
                PDQ if i % a.block_every == 0 else pysecrets.token_hex(32),
                i,
                "DE" if i % a.territory_every == 0 else None,
            )
            for i in range(a.decisions)
        ]

        async def record() -> list[int]:
            cases: list[int] = []
            for i in range(0, len(items), 256):
                cases += [x.case_id for x in await e.scan_many_async(items[i : i + 256]) if x.case_id is not None]
            return cases

        t = time.perf_counter()
        cases = asyncio.run(record())
        print(f"recorded {a.decisions} decisions ({len(cases)} cases) in {time.perf_counter() - t:.1f} s")
        cs = CaseService(e.db, e.settings.with_(reports_auto_draft=False))
        t = time.perf_counter()
        for n, cid in enumerate(cases[: a.decide]):
            cs.claim(MOD, cid)
            confirmed = n % 2 == 0
            cs.decide(
                MOD, cid, outcome="confirmed" if confirmed else "not_violating", category="A1" if confirmed else None
            )
        print(f"decided {min(a.decide, len(cases))} cases in {time.perf_counter() - t:.1f} s")

        today = datetime.now(UTC).date().isoformat()
        period = parse_period(today, today)
        t = time.perf_counter()
        with e.db.read() as s:
            report = build(s, period, 10)
        built = time.perf_counter() - t
        n = report["event_range"]["events"]
        print(
            f"build: {n} events, {report['figures']['content_scanned']['decisions_total']} decisions in {built:.2f} s"
        )
        for scope in (Scope(territory="DE"), Scope(tenant="default")):
            t = time.perf_counter()
            with e.db.read() as s:
                scoped = build(s, period, 10, scope)
            print(
                f"build scoped to {scope.to_dict()}: {scoped['figures']['content_scanned']['decisions_total']} "
                f"decisions, {scoped['figures']['cases']['decided_total']} cases decided in "
                f"{time.perf_counter() - t:.2f} s"
            )
        if a.out:
            with open(a.out, "w", encoding="utf-8") as fh:
                fh.write(render(report, "json"))
        for fmt in ("html", "csv", "json"):
            t = time.perf_counter()
            text = render(report, fmt)
            print(f"render {fmt}: {len(text):,} bytes in {(time.perf_counter() - t) * 1000:.1f} ms")
        t = time.perf_counter()
        with e.db.read() as s:
            v = verify(s, json.loads(render(report, "json")))
        print(
            f"verify: ok={v.ok}, {v.figures_checked} figures, {v.events_checked} events in {time.perf_counter() - t:.2f} s"
        )
        e.close()


if __name__ == "__main__":
    main()
