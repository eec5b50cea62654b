"""GPU path benchmark: 720p JPEGs end to end (decode + PDQ + match against a 1M bank) on whatever device
torch has, side by side with the reference (``pdqhash`` after a full decode, as HMA hashes).

One command on a GPU machine (``pip install -e '.[gpu,bench]'``, plus torchvision for nvJPEG):

    python bench/gpu_bench.py                       # device auto: CUDA when present, else the CPU
    python bench/gpu_bench.py --count 8192 --batch-size 256 --device cuda

What it does, in one run:
- makes ``--distinct`` benign photo-like JPEGs (gradients, shapes, noise) at ``--size`` and cycles them to
  ``--count`` inputs (the pipeline caches nothing, so repeats cost the same as new files);
- a bank of ``--bank`` random PDQ hashes plus, for some images, an entry planted at a known distance
  (1-31) from that image's reference hash: every planted entry must be found (recall of the match step);
- the reference: ``threatexchange``'s ``pdq_from_bytes`` (Pillow full decode + ``pdqhash``) on
  ``--ref-count`` images, one thread: its images/s, and its hashes to measure drift against;
- Safeguard's batched path (:class:`safeguard.gpu.pipeline.BatchHasher` +
  :class:`safeguard.gpu.match.TorchMatcher`): images/s end to end and per stage (decode, hash, match),
  for each ``--decode`` mode; drift (mean, p99, max bits) from the reference on the same bytes;
- the match step alone: queries/s and hash pairs/s against the bank;
- ``--matcher``: ``scan`` compares every bank entry on the device (:class:`TorchMatcher`), ``index``
  probes the exact multi-index hashing index on the CPU (:class:`IndexMatcher`; its build time is
  printed), ``auto`` picks as ``safeguard backfill`` does for ``--count`` images; ``scan,index`` runs both.

The device, torch and CUDA versions, core count and load average are printed with the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _images import jpeg_bytes, photo_like
from safeguard.config import Settings
from safeguard.gpu.decode import Pixels
from safeguard.gpu.match import IndexMatcher, TorchMatcher, pick_matcher
from safeguard.gpu.pipeline import BatchHasher
from safeguard.index.hamming import hex_to_words
from safeguard.signals.base import hamming_hex

console = Console(width=int(os.environ.get("COLUMNS", "200")))


def _make(args: tuple[int, int, int]) -> bytes:
    w, h, seed = args
    return jpeg_bytes(photo_like(w, h, seed))


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def make_bank(n: int, ref_hashes: list[str], seed: int = 0) -> tuple[np.ndarray, dict[int, tuple[int, int]]]:
    """(n, 4) uint64 random words with a planted entry near some reference hashes.

    Returns the words and {bank row: (image index, planted distance)}.
    """
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**63, size=(n, 4), dtype=np.int64).view(np.uint64)
    words ^= rng.integers(0, 2, size=(n, 4), dtype=np.uint64) << np.uint64(63)
    planted: dict[int, tuple[int, int]] = {}
    rows = rng.choice(n, size=min(n, len(ref_hashes)), replace=False)
    for k, (row, ref) in enumerate(zip(rows.tolist(), ref_hashes, strict=False)):
        dist = 1 + k % 31
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(ref), dtype=np.uint8))
        bits[rng.choice(256, dist, replace=False)] ^= 1
        words[row] = hex_to_words([np.packbits(bits).tobytes().hex()], 4)[0]
        planted[row] = (k, dist)
    return words, planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--count", type=int, default=0, help="images through the pipeline (default: 4096 on CUDA, 256 CPU)")
    ap.add_argument("--distinct", type=int, default=256, help="distinct generated JPEGs, cycled up to --count")
    ap.add_argument("--ref-count", type=int, default=128, help="images the reference hashes (drift and its speed)")
    ap.add_argument("--bank", type=int, default=1_000_000)
    ap.add_argument("--threshold", type=int, default=31)
    ap.add_argument("--batch-size", type=int, default=0, help="default: 256 on CUDA, 32 on the CPU")
    ap.add_argument("--decode", default="exact,fast", help="decode modes to run (fast: CPU DCT-scaled luma)")
    ap.add_argument("--method", default="auto", help="scan method: auto, popcount or matmul")
    ap.add_argument("--matcher", default="auto", help="auto, scan, index, or several: scan,index")
    args = ap.parse_args()
    from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

    w, h = (int(v) for v in args.size.split("x"))
    probe = BatchHasher(args.device, batch_size=1)
    dev = probe.device
    count = args.count or (4096 if dev.type == "cuda" else 256)
    batch_size = args.batch_size or (256 if dev.type == "cuda" else 32)
    console.print(f"device: {probe.describe()}")
    console.print(f"load average before: {os.getloadavg()}  ({os.cpu_count()} cores)")
    probe.close()

    distinct = min(args.distinct, count)
    t = time.perf_counter()
    with ProcessPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        images = list(pool.map(_make, [(w, h, s) for s in range(distinct)], chunksize=8))
    datas = [images[i % distinct] for i in range(count)]
    console.print(
        f"{distinct} distinct {w}x{h} JPEGs (mean {np.mean([len(d) for d in images]) / 1024:.0f} KiB) "
        f"made in {time.perf_counter() - t:.1f}s, cycled to {count} inputs"
    )

    # reference: full decode + pdqhash, one image at a time
    n_ref = min(args.ref_count, distinct)
    t = time.perf_counter()
    ref = [pdq_from_bytes(d)[0] for d in images[:n_ref]]
    ref_rate = n_ref / (time.perf_counter() - t)

    words, planted = make_bank(args.bank, ref)
    kinds = args.matcher.split(",")
    if kinds == ["auto"]:
        kinds = [pick_matcher(dev, args.bank, count)]
    matchers: list[IndexMatcher | TorchMatcher] = []
    for kind in kinds:
        t = time.perf_counter()
        if kind == "index":
            matchers.append(IndexMatcher(np.arange(args.bank), words))
        elif kind == "scan":
            matchers.append(TorchMatcher(np.arange(args.bank), words, device=dev, method=args.method))
        else:
            raise SystemExit(f"unknown matcher {kind!r}: auto, scan or index")
        _sync(dev)
        where = "the CPU" if kind == "index" else dev
        console.print(
            f"bank: {args.bank:,} PDQ hashes ({len(planted)} planted at distances 1-31), "
            f"{matchers[-1].method} matcher, {'built' if kind == 'index' else 'loaded'} on {where} "
            f"in {time.perf_counter() - t:.1f}s"
        )
    want = {img: row for row, (img, _) in planted.items()}

    table = Table(
        title=f"{w}x{h} JPEGs: decode + PDQ + match against {args.bank:,} hashes (threshold {args.threshold})"
    )
    cols = ["pipeline", "decode", "images", "img/s", "vs reference", "decode ms/img", "hash ms/img", "match ms/img"]
    cols += ["drift mean", "drift p99", "drift max", "planted found"]
    for c in cols:
        table.add_column(c, justify="left" if c in ("pipeline", "decode") else "right")
    table.add_row(
        "reference: pdq_from_bytes (full decode + pdqhash), 1 thread", "full", str(n_ref), f"{ref_rate:.1f}",
        "1.0x", "-", "-", "-", "0", "0", "0", "-",
    )  # fmt: skip

    for mode, matcher in ((m, x) for m in args.decode.split(",") for x in matchers):
        hasher = BatchHasher(dev, batch_size=batch_size, draft=Settings().pdq_draft_size if mode == "fast" else 0)
        if mode == "fast" and hasher.nvjpeg is not None:
            console.print("note: fast mode changes only CPU decoding; nvJPEG decodes JPEGs in full")
        hasher.hash_batch(datas[:batch_size])  # warm-up: CUDA context, per-size matrices, nvJPEG handles
        matcher.match_hex([ref[0]], args.threshold)
        _sync(dev)
        stage = {"decode": 0.0, "hash": 0.0, "match": 0.0}
        hashes: list[str] = []
        found = 0
        t_all = time.perf_counter()
        for start in range(0, count, batch_size):
            chunk = datas[start : start + batch_size]
            t0 = time.perf_counter()
            decoded = hasher.decode(chunk)
            _sync(dev)
            t1 = time.perf_counter()
            results = hasher.hash_pixels([d for d in decoded if isinstance(d, Pixels)])
            t2 = time.perf_counter()
            hits = matcher.match_hex([r.hash for r in results], args.threshold)
            t3 = time.perf_counter()
            stage["decode"] += t1 - t0
            stage["hash"] += t2 - t1
            stage["match"] += t3 - t2
            for k, (r, hit) in enumerate(zip(results, hits, strict=True)):
                i = start + k
                if i < n_ref:
                    hashes.append(r.hash)
                    found += want.get(i, -1) in {row for row, _ in hit}
        elapsed = time.perf_counter() - t_all
        hasher.close()
        drift = np.array([hamming_hex(a, b) for a, b in zip(ref, hashes, strict=False)])
        table.add_row(
            f"Safeguard batched, {dev.type}, batch {batch_size}, {matcher.method} matcher",
            "nvJPEG" if hasher.nvjpeg else ("Pillow full" if mode == "exact" else "Pillow DCT-scaled luma"),
            str(count),
            f"{count / elapsed:.1f}",
            f"{count / elapsed / ref_rate:.1f}x",
            *(f"{stage[s] / count * 1e3:.2f}" for s in ("decode", "hash", "match")),
            f"{drift.mean():.2f}",
            f"{np.percentile(drift, 99):.0f}",
            f"{drift.max()}",
            f"{found}/{min(n_ref, len(planted))}",
        )
    console.print(table)

    # the match step alone, with a batch of query hashes the size of a decode batch
    queries = [ref[i % n_ref] for i in range(batch_size)]
    for matcher in matchers:
        matcher.match_hex(queries, args.threshold)
        _sync(dev)
        reps = 5 if dev.type == "cuda" or matcher.method == "index" else 1
        t = time.perf_counter()
        for _ in range(reps):
            matcher.match_hex(queries, args.threshold)
        _sync(dev)
        per = (time.perf_counter() - t) / reps
        console.print(
            f"match alone: {batch_size} queries x {args.bank:,} hashes in {per * 1e3:.1f} ms = "
            f"{batch_size / per:,.0f} queries/s"
            + (
                " (index)"
                if matcher.method == "index"
                else f", {batch_size * args.bank / per:.3g} pairs/s ({matcher.method})"
            )
        )
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
