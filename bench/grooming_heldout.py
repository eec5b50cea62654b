"""The packaged grooming models on a held-out author nobody trained or tuned on (datasets/grooming-heldout).

Each conversation is replayed message by message as the service scores it (``evaluation.run``: an alert
is the risk reaching the model's own threshold, or the sextortion rule); the table gives precision,
recall, F0.5, ROC-AUC, alerts in time, false alerts per 1,000 benign and recall per language, with
bootstrap 95% intervals. Usage: ``python bench/grooming_heldout.py [FILE] [--models model.json ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from rich.console import Console
from rich.table import Table

from safeguard.detectors.grooming import evaluation as ev
from safeguard.detectors.grooming.loaders import load_authors
from safeguard.detectors.grooming.scorer import Scorer

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(ev.__file__).parent / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(ROOT / "datasets" / "grooming-heldout" / "wf.jsonl"))
    ap.add_argument("--models", nargs="+", default=["model.json", "model-v3.json", "model-v2.json", "model-v1.json"])
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    convs = load_authors(args.path)
    out = {}
    for name in args.models:
        scorer = Scorer.load(DATA / name)
        rs = [ev.run(scorer, c, scorer.model.threshold) for c in convs]
        langs = {
            lang: ev.measures([r for r in rs if r.language == lang])["recall"] for lang in ("en", "es", "fr", "de")
        }
        out[name] = {
            "threshold": scorer.model.threshold,
            **ev.with_ci(rs, n=args.bootstrap),
            "recall_by_language": langs,
        }
    if args.json:
        print(json.dumps(out, indent=1, default=float))
        return
    measures = ["precision", "recall", "f0.5", "roc_auc", "in_time", "false_alerts_per_1000_benign", "stage_agreement"]
    table = Table(title=f"held-out author: {args.path} ({len(convs)} conversations)")
    table.add_column("measure")
    for name in out:
        table.add_column(name, justify="right")
    for m in measures:
        cells = []
        for v in out.values():
            x = v[m]
            cells.append(f"{x['value']:.3g} [{x['ci95'][0]:.3g}-{x['ci95'][1]:.3g}]")
        table.add_row(m, *cells)
    table.add_row(
        "recall en/es/fr/de", *("/".join(f"{x:.2f}" for x in v["recall_by_language"].values()) for v in out.values())
    )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
