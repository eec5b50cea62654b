"""PDQ hashing benchmark: Safeguard's decode modes against the reference, same JPEGs, same run.

The reference is ``threatexchange.signal_type.pdq.pdq_hasher.pdq_from_bytes`` (what HMA calls: full
decode, then ``pdqhash``). Safeguard is timed through ``Media.from_bytes(...)`` and the PDQ signal type,
i.e. the code path a scan runs. Drift is the Hamming distance between each mode's hash and the
reference's hash of the same bytes.

    python bench/hashing_bench.py [--sizes 640x480,1920x1080,4000x3000] [--count 30] [--images photo,detailed]

Two kinds of benign generated JPEG: ``photo`` (smooth gradients and shapes, like most photos) and
``detailed`` (hard edges, small text and strong noise at full resolution: the hard case for reduced
decodes, and slower to decode for everyone because JPEG spends its bits on the detail).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _images import detailed, jpeg_bytes, photo_like
from safeguard.media import Media
from safeguard.signals import get_signal_type
from safeguard.signals.base import hamming_hex

console = Console(width=int(os.environ.get("COLUMNS", "200")))


def safeguard_hash(draft: int):
    pdq = get_signal_type("pdq")

    def run(data: bytes) -> str:
        return pdq.compute(Media.from_bytes(data, hash_draft=draft))[0].value

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="640x480,1920x1080,4000x3000")
    ap.add_argument("--count", type=int, default=30, help="images per size (12 MP uses a third)")
    ap.add_argument("--drafts", default="256,128", help="fast-mode draft sizes (SAFEGUARD_PDQ_DRAFT_SIZE) to measure")
    ap.add_argument("--images", default="photo,detailed", help="generated image kinds: photo, detailed")
    args = ap.parse_args()
    from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

    console.print(f"load average before: {os.getloadavg()}")
    modes = [("reference (pdq_from_bytes)", lambda b: pdq_from_bytes(b)[0]), ("Safeguard exact", safeguard_hash(0))]
    modes += [(f"Safeguard fast ({d})", safeguard_hash(int(d))) for d in args.drafts.split(",")]
    table = Table(title="PDQ hashing of JPEG uploads, one process, one thread")
    for col in ("size", "mode", "img/s", "ms/img", "speed-up", "drift mean", "drift p99", "drift max"):
        table.add_column(col, justify="left" if col in ("size", "mode") else "right")
    makers = {"photo": photo_like, "detailed": detailed}
    for kind, size in [(k, s) for k in args.images.split(",") for s in args.sizes.split(",")]:
        w, h = (int(v) for v in size.split("x"))
        n = args.count if w * h < 5_000_000 else max(4, args.count // 3)
        imgs = [
            jpeg_bytes(makers[kind](w, h, seed))
            for seed in track(range(n), description=f"making {size}", console=console, transient=True)
        ]
        times: dict[str, float] = {name: 0.0 for name, _ in modes}
        hashes: dict[str, list[str]] = {name: [] for name, _ in modes}
        for data in track(imgs, description=f"hashing {size}", console=console, transient=True):
            for name, fn in modes:  # interleaved, so load changes hit every mode alike
                t = time.perf_counter()
                hashes[name].append(fn(data))
                times[name] += time.perf_counter() - t
        ref_name = modes[0][0]
        for name, _ in modes:
            drift = np.array([hamming_hex(a, b) for a, b in zip(hashes[ref_name], hashes[name], strict=True)])
            table.add_row(
                f"{kind} {w}x{h} ({n})",
                name,
                f"{n / times[name]:.1f}",
                f"{times[name] / n * 1e3:.1f}",
                f"{times[ref_name] / times[name]:.1f}x",
                f"{drift.mean():.2f}",
                f"{np.percentile(drift, 99):.0f}",
                f"{drift.max()}",
            )
    console.print(table)
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
