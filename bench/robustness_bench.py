"""Robustness of PDQ matching under Safeguard's decode modes: recall after edits, false positives.

The bank holds the *reference* hashes of the original images (hash lists are made by other people's
tools: full decode, ``pdqhash``). Each original is then edited (re-encoding, resizing, cropping,
small rotations, flips, watermark overlays), uploaded as JPEG, hashed with each decode mode and
matched at the confident threshold (31), with and without the eight dihedral variants. Unrelated
distractor images (different seeds) give the false-positive rate. All images are generated and
benign (gradients, shapes, noise).

``--thresholds 31,40`` adds columns at other distances: 40 is how far a bank's review band reaches by
default (matches at 32-40 go to a moderator instead of blocking), which tells what that band buys in
recall and what it risks in false positives. The last row gives the closest any distractor came to a
bank entry, in bits: the margin the thresholds have on these images.

    python bench/robustness_bench.py [--sources 100] [--distractors 1000] [--thresholds 31,40]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw
from rich.console import Console
from rich.progress import track
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _images import jpeg_bytes, photo_like
from safeguard.index.mih import MIHIndex
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal, media_dihedral_hex, pdq_hex

console = Console(width=int(os.environ.get("COLUMNS", "200")))
THRESHOLD = 31


def _crop(im: Image.Image, frac: float) -> Image.Image:
    w, h = im.size
    dx, dy = int(w * frac / 2), int(h * frac / 2)
    return im.crop((dx, dy, w - dx, h - dy))


def _watermark(im: Image.Image) -> Image.Image:
    out = im.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    w, h = out.size
    d.rectangle([w * 0.65, h * 0.85, w * 0.97, h * 0.96], fill=(255, 255, 255, 110))
    for k in range(4):
        d.text((w * 0.67, h * (0.86 + 0.025 * k)), "example.com  @someone", fill=(0, 0, 0, 200))
    d.text((w * 0.05, h * 0.05), "SAMPLE", fill=(255, 255, 255, 160))
    return Image.alpha_composite(out, layer).convert("RGB")


def _encode(im: Image.Image, quality: int = 90) -> bytes:
    return jpeg_bytes(im, quality)


EDITS: dict[str, Callable[[Image.Image], bytes]] = {
    "re-encode q90": lambda im: _encode(im, 90),
    "re-encode q40": lambda im: _encode(im, 40),
    "re-encode q20": lambda im: _encode(im, 20),
    "resize 50%": lambda im: _encode(im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR)),
    "resize 25%": lambda im: _encode(im.resize((im.width // 4, im.height // 4), Image.Resampling.BILINEAR)),
    "upscale 150%": lambda im: _encode(im.resize((im.width * 3 // 2, im.height * 3 // 2), Image.Resampling.BICUBIC)),
    "crop 2%": lambda im: _encode(_crop(im, 0.02)),
    "crop 5%": lambda im: _encode(_crop(im, 0.05)),
    "crop 10%": lambda im: _encode(_crop(im, 0.10)),
    "crop 20%": lambda im: _encode(_crop(im, 0.20)),
    "rotate 1 deg": lambda im: _encode(im.rotate(1, resample=Image.Resampling.BILINEAR)),
    "rotate 2 deg": lambda im: _encode(im.rotate(2, resample=Image.Resampling.BILINEAR)),
    "rotate 5 deg": lambda im: _encode(im.rotate(-5, resample=Image.Resampling.BILINEAR)),
    "mirror": lambda im: _encode(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
    "flip": lambda im: _encode(im.transpose(Image.Transpose.FLIP_TOP_BOTTOM)),
    "rotate 90": lambda im: _encode(im.transpose(Image.Transpose.ROTATE_90)),
    "watermark": lambda im: _encode(_watermark(im)),
    "resize 50% + q40 + watermark": lambda im: _encode(
        _watermark(im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR)), 40
    ),
}


def hashes_for(data: bytes, draft: int, dihedral: bool) -> list[str]:
    media = Media.from_bytes(data, hash_draft=draft)
    if dihedral:
        return [h for h, _ in media_dihedral_hex(media)]
    return [PDQSignal().compute(media)[0].value]


def nearest(index: MIHIndex, hashes: list[str], threshold: int) -> dict[int, int]:
    """Bank entries within ``threshold`` of any of ``hashes``, with the smallest distance to each."""
    out: dict[int, int] = {}
    for h in hashes:
        for i, dist in index.query(h, threshold):
            out[i] = min(dist, out.get(i, 256))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--distractors", type=int, default=1000)
    ap.add_argument("--size", default="1600x1200", help="size of the original images")
    ap.add_argument("--drafts", default="0,256,128", help="pdq_draft_size values to compare (0 = exact)")
    ap.add_argument("--thresholds", default=str(THRESHOLD), help="match distances to report, e.g. 31,40")
    args = ap.parse_args()
    thresholds = sorted(int(t) for t in args.thresholds.split(","))
    widest = thresholds[-1]
    w, h = (int(v) for v in args.size.split("x"))
    drafts = [int(d) for d in args.drafts.split(",")]
    console.print(f"load average before: {os.getloadavg()}")
    t0 = time.perf_counter()
    originals = [
        photo_like(w, h, 10_000 + s) for s in track(range(args.sources), description="originals", console=console)
    ]
    index = MIHIndex()
    # the bank: reference (full decode) hashes of the originals as JPEG q90
    index.add(list(range(args.sources)), [pdq_hex(Media.from_bytes(_encode(im)).image())[0] for im in originals])
    modes = [(d, dih, t) for d in drafts for dih in (False, True) for t in thresholds]
    recall: dict[str, dict[tuple[int, bool, int], float]] = {}
    for name, edit in track(list(EDITS.items()), description="edits", console=console):
        uploads = [edit(im) for im in originals]
        recall[name] = {}
        for d in drafts:
            for dih in (False, True):
                found = [nearest(index, hashes_for(data, d, dih), widest) for data in uploads]
                for t in thresholds:
                    hits = sum(found[s].get(s, 256) <= t for s in range(len(uploads)))
                    recall[name][(d, dih, t)] = hits / len(uploads)
    fp: dict[tuple[int, bool, int], float] = {}
    closest: dict[tuple[int, bool, int], int] = {}
    dw, dh = 1024, 768
    distractors = [
        jpeg_bytes(photo_like(dw, dh, 50_000 + k), 85)
        for k in track(range(args.distractors), description="distractors", console=console)
    ]
    probe = 256  # every distance: how close the nearest unrelated image came (a small bank is scanned)
    for d in drafts:
        for dih in (False, True):
            near = [min(nearest(index, hashes_for(data, d, dih), probe).values(), default=256) for data in distractors]
            for t in thresholds:
                fp[(d, dih, t)] = sum(x <= t for x in near) / len(distractors)
                closest[(d, dih, t)] = min(near)

    def label(d: int, dih: bool, t: int) -> str:
        name = ("exact" if d == 0 else f"fast {d}") + (" +dihedral" if dih else "")
        return name if len(thresholds) == 1 else f"{name} <={t}"

    at = ", ".join(str(t) for t in thresholds)
    table = Table(title=f"PDQ recall at distance <= {at}: {args.sources} originals {w}x{h}, bank = reference hashes")
    table.add_column("edit")
    for m in modes:
        table.add_column(label(*m), justify="right")
    for name, row in recall.items():
        table.add_row(name, *(f"{row[m]:.2f}" for m in modes))
    table.add_row(
        f"false positives ({args.distractors} unrelated {dw}x{dh})", *(f"{fp[m]:.4f}" for m in modes), style="bold"
    )
    table.add_row("closest unrelated image (bits)", *(str(closest[m]) for m in modes))
    console.print(table)
    console.print(f"took {time.perf_counter() - t0:.0f} s; load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
