"""A longer fuzz run than CI's: every target for as long as you give it, one process per target.

    python bench/fuzz.py --seconds 300                  # the whole budget, shared by the targets
    python bench/fuzz.py --seconds 60 --targets media:MP4,openapi --out bench/results/fuzz.txt

Targets (the same harness as ``tests/fuzz/``, ``tests/fuzz/harness.py``):

- ``media:<TYPE>`` for JPEG, PNG, GIF, WEBP, BMP, TIFF, MP4, WEBM: a benign generated file mutated
  (byte and bit flips, truncations, inserted/deleted/duplicated spans, header fields and box sizes set
  to boundary values), posted to ``/v1/scan`` (every fourth to ``/v1/banks/{bank}/entries``);
- ``openapi``: schemathesis over every operation of the app's OpenAPI document, positive and negative
  requests, free and existing path ids (stream registration left out: it opens URLs);
- ``json``: valid bodies of every JSON endpoint, mutated byte-wise;
- ``import``: CSV and JSON Lines hash lists, mutated.

Each target runs in its own process (``--worker``), so the table's peak RSS is that target's, and a
process that hangs is killed and counted instead of stopping the run. The table: inputs tried, answers
by class, 5xx (target 0), error answers that were not the API's JSON (target 0), hangs (inputs slower
than ``--hang-seconds``, or a worker killed at its deadline; target 0), the slowest input, and the
worker's peak RSS. Problems found are listed after the table with the input that caused them.

Run from the repository root: the harness lives in ``tests/``, which this script puts on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

MEDIA_TARGETS = [f"media:{f}" for f in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MP4", "WEBM")]
ALL_TARGETS = [*MEDIA_TARGETS, "openapi", "json", "import"]


# -- the worker: one target, in its own process ---------------------------------------------------------
def run_worker(target_name: str, seconds: float, seed: int, hang_seconds: float) -> dict[str, Any]:
    import faulthandler
    import logging
    import warnings

    sys.path.insert(0, str(ROOT))
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # 500s are counted here, not logged

    from tests.fuzz.harness import (
        Tally,
        fuzz_operation,
        fuzz_target,
        json_endpoints,
        mutate,
        mutate_json,
        openapi_operations,
        problems,
        seed_media,
    )

    tally = Tally()
    rng = random.Random(seed)
    # a stuck input (inside FFmpeg, say) cannot be interrupted: dump the stacks and exit instead
    faulthandler.dump_traceback_later(seconds + 10 * hang_seconds + 120, exit=True)
    media = seed_media() if target_name.startswith("media:") else {}

    def send(t: Any, name: str, method: str, path: str, headers: dict[str, str], what: Any, **kw: Any) -> None:
        t0 = time.perf_counter()
        r = t.client.request(method, path, headers=headers, **kw)
        took = time.perf_counter() - t0
        bad = problems(r.status_code, r.headers.get("content-type"), r.content)
        tally.record(name, r.status_code, bad, took, what, hang_seconds)

    with fuzz_target() as t:
        deadline = time.monotonic() + seconds  # the budget is fuzzing time: setup is not counted
        if target_name.startswith("media:"):
            fmt = target_name.split(":", 1)[1]
            base = media[fmt]
            k = 0
            while time.monotonic() < deadline:
                ops, data = mutate(base, rng)
                files = {"file": (f"x.{fmt.lower()}", data, "application/octet-stream")}
                what = {"mutations": ops, "bytes": data.hex() if len(data) < 4096 else f"{len(data)} bytes"}
                if k % 4 == 3:
                    path, role = f"/v1/banks/{t.bank}/entries", "moderator"
                else:
                    path, role = "/v1/scan", "platform"
                send(t, target_name, "POST", path, t.headers(role), what, files=files)
                k += 1
        elif target_name == "openapi":
            ops = openapi_operations(t)
            rnd = 0
            while time.monotonic() < deadline:
                for k, op in enumerate(ops):
                    if time.monotonic() >= deadline:
                        break
                    fuzz_operation(
                        t,
                        op,
                        tally,
                        examples=10,
                        seed=seed * 100_000 + rnd * 1000 + k,
                        negative=rnd % 2 == 1,
                        known_paths=rnd % 4 >= 2,
                        slow_after=hang_seconds,
                    )
                rnd += 1
            # one name in the table: the per-operation counts are summed
            tally.tried = {"openapi": sum(tally.tried.values())}
            statuses: dict[int, int] = {}
            for by in tally.statuses.values():
                for code, n in by.items():
                    statuses[code] = statuses.get(code, 0) + n
            tally.statuses = {"openapi": statuses}
        elif target_name == "json":
            endpoints = [e for e in json_endpoints(t) if e[1] != "/v1/streams"]  # streams open URLs
            while time.monotonic() < deadline:
                method, path, role, body = rng.choice(endpoints)
                if rng.random() < 0.5:
                    ops, raw = mutate_json(body, rng)
                else:
                    ops, raw = mutate(json.dumps(body).encode(), rng)
                headers = {**t.headers(role), "Content-Type": "application/json"}
                send(t, "json", method, path, headers, {"path": path, "body": raw[:300]}, content=raw)
        elif target_name == "import":
            csv_seed = (
                "signal_type,value,category,source,provenance\n"
                f'pdq,{"0f" * 32},A1,ncmec,"{{""k"": 1}}"\n'
                f"md5,d41d8cd98f00b204e9800998ecf8427e,B2,,\n"
            ).encode()
            jsonl_seed = "\n".join(
                json.dumps(x)
                for x in (
                    {"signal_type": "pdq", "value": "1e" * 32, "category": "A1", "provenance": {"n": [1, 2]}},
                    {"signal_type": "vpdq", "value": [f"{'2d' * 32},90,{s}.000" for s in range(3)]},
                    {"signal_type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e", "delete": True},
                )
            ).encode()
            while time.monotonic() < deadline:
                fmt, base = rng.choice((("csv", csv_seed), ("jsonl", jsonl_seed)))
                ops, raw = mutate(base, rng)
                path = f"/v1/banks/{t.bank}/import?format={fmt}"
                send(t, "import", "POST", path, t.headers("admin"), {"format": fmt, "body": raw[:300]}, content=raw)
        else:
            raise SystemExit(f"unknown target {target_name!r}; one of {ALL_TARGETS}")
    faulthandler.cancel_dump_traceback_later()
    return {
        "target": target_name,
        "tried": sum(tally.tried.values()),
        "statuses": {str(k): v for by in tally.statuses.values() for k, v in by.items()},
        "found": tally.found[:20],
        "found_count": len(tally.found),
        "nonjson_count": sum(1 for f in tally.found if any(not p.startswith("status") for p in f["problems"])),
        "slow": sorted(tally.slow, key=lambda s: -s["seconds"])[:5],
        "slow_count": len(tally.slow),
        "slowest_s": tally.slowest,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# -- the parent: a worker per target, then the table ----------------------------------------------------
def run_target(name: str, seconds: float, seed: int, hang_seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--seconds", str(seconds)]
    cmd += ["--seed", str(seed), "--hang-seconds", str(hang_seconds)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 10 * hang_seconds + 120, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"target": name, "tried": 0, "killed": True, "wall_s": time.monotonic() - t0}
    last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    if proc.returncode != 0 or not last:
        return {
            "target": name,
            "tried": 0,
            "killed": True,
            "error": proc.stderr[-2000:],
            "wall_s": time.monotonic() - t0,
        }
    res: dict[str, Any] = json.loads(last[0])
    res["wall_s"] = time.monotonic() - t0
    return res


def table(results: list[dict[str, Any]]) -> str:
    head = f"{'target':<12} {'inputs':>7} {'2xx':>6} {'4xx':>6} {'5xx':>4} {'non-JSON':>8} {'hangs':>5} {'slowest s':>9} {'peak RSS MB':>11}"
    lines = [head, "-" * len(head)]
    tot = {"tried": 0, "2xx": 0, "4xx": 0, "5xx": 0, "nonjson": 0, "hangs": 0}
    for r in results:
        st = {int(k): v for k, v in (r.get("statuses") or {}).items()}
        n2 = sum(v for k, v in st.items() if 200 <= k < 300)
        n4 = sum(v for k, v in st.items() if 400 <= k < 500)
        n5 = sum(v for k, v in st.items() if k >= 500)
        nonjson = r.get("nonjson_count", 0)
        hangs = r.get("slow_count", 0) + (1 if r.get("killed") else 0)
        slowest = r.get("slowest_s")
        rss = r.get("peak_rss_mb")
        lines.append(
            f"{r['target']:<12} {r['tried']:>7} {n2:>6} {n4:>6} {n5:>4} {nonjson:>8} {hangs:>5} "
            f"{(f'{slowest:.2f}' if slowest else '-'):>9} {(f'{rss:.0f}' if rss else 'killed'):>11}"
        )
        for k, v in (
            ("tried", r["tried"]),
            ("2xx", n2),
            ("4xx", n4),
            ("5xx", n5),
            ("nonjson", nonjson),
            ("hangs", hangs),
        ):
            tot[k] += v
    lines.append("-" * len(head))
    lines.append(
        f"{'total':<12} {tot['tried']:>7} {tot['2xx']:>6} {tot['4xx']:>6} {tot['5xx']:>4} {tot['nonjson']:>8} {tot['hangs']:>5}"
    )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0, help="the whole run's budget, shared by the targets")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS), help="comma-separated; default: all")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hang-seconds", type=float, default=10.0, help="an input slower than this counts as a hang")
    ap.add_argument("--out", default="", help="also write the report to this file")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.seconds, args.seed, args.hang_seconds)))
        return 0
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in ALL_TARGETS]
    if unknown:
        ap.error(f"unknown targets {unknown}; choose from {ALL_TARGETS}")
    per = max(1.0, args.seconds / len(targets))
    started = datetime.now(UTC)
    results = []
    for k, name in enumerate(targets):
        print(f"[{k + 1}/{len(targets)}] {name}: {per:.0f} s", file=sys.stderr, flush=True)
        results.append(run_target(name, per, args.seed + k, args.hang_seconds))
    report = [
        f"bench/fuzz.py --seconds {args.seconds:g} --seed {args.seed} --hang-seconds {args.hang_seconds:g}",
        f"started {started:%Y-%m-%d %H:%M:%S} UTC, {len(targets)} targets, {per:.0f} s each, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "",
        table(results),
    ]
    problems = [(r["target"], f) for r in results for f in r.get("found", [])]
    problems += [
        (r["target"], {"problems": ["worker killed or failed"], "input": r.get("error", "")})
        for r in results
        if r.get("killed")
    ]
    slow = [(r["target"], s) for r in results for s in r.get("slow", [])]
    if problems or slow:
        report += ["", "Problems (first 20 per target):"]
        report += [f"  {t}: {f['problems']} <- {f['input'][:300]}" for t, f in problems]
        report += [f"  {t}: slow {s['seconds']} s <- {s['input'][:300]}" for t, s in slow]
    else:
        report += ["", "No 5xx, no error that was not the API's JSON, no hang."]
    text = "\n".join(report)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    bad = any(r.get("killed") or r.get("found_count") or r.get("slow_count") for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
