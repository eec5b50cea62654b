"""The packaged grooming models on a held-out author nobody trained or tuned on (datasets/grooming-heldout).

Each conversation is replayed message by message as the service scores it (``evaluation.run``: an alert
is the risk reaching the model's own threshold, or the sextortion rule); the table gives precision,
recall, F0.5, ROC-AUC, alerts in time, false alerts per 1,000 benign and recall per language, with
bootstrap 95% intervals. Usage: ``python bench/grooming_heldout.py [FILE ...] [--models model.json ...]``; without files, every
held-out author in datasets/grooming-heldout, one table each and one for all of them pooled.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from rich.console import Console
from rich.table import Table

from safeguard.detectors.grooming import evaluation as ev
from safeguard.detectors.grooming.loaders import LoadedConversation, load_authors
from safeguard.detectors.grooming.scorer import Scorer

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(ev.__file__).parent / "data"
MODELS = ["model.json", "model-v5.json", "model-v4.json", "model-v3.json", "model-v2.json", "model-v1.json"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", help="held-out files (default: datasets/grooming-heldout/*.jsonl)")
    ap.add_argument("--models", nargs="+", default=[m for m in MODELS if (DATA / m).exists()])
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    paths = args.paths or [str(p) for p in sorted((ROOT / "datasets" / "grooming-heldout").glob("*.jsonl"))]
    sets = {Path(p).name: load_authors(p) for p in paths}
    if len(sets) > 1:
        sets["pooled"] = [c for convs in list(sets.values()) for c in convs]
    scorers = {name: Scorer.load(DATA / name) for name in args.models}
    results = {label: evaluate(scorers, convs, args.bootstrap) for label, convs in sets.items()}
    if args.json:
        print(json.dumps(results, indent=1, default=float))
        return
    for label, out in results.items():
        Console(width=200).print(table(f"held-out: {label} ({len(sets[label])} conversations)", out))


def evaluate(scorers: dict[str, Scorer], convs: list[LoadedConversation], n: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name, scorer in scorers.items():
        rs = [ev.run(scorer, c, scorer.model.threshold) for c in convs]
        langs = {
            lang: ev.measures([r for r in rs if r.language == lang])["recall"] for lang in ("en", "es", "fr", "de")
        }
        out[name] = {"threshold": scorer.model.threshold, **ev.with_ci(rs, n=n), "recall_by_language": langs}
    return out


def table(title: str, out: dict[str, dict[str, Any]]) -> Table:
    measures = ["precision", "recall", "f0.5", "roc_auc", "in_time", "false_alerts_per_1000_benign", "stage_agreement"]
    t = Table(title=title)
    t.add_column("measure")
    for name in out:
        t.add_column(name, justify="right")
    for m in measures:
        t.add_row(m, *(f"{v[m]['value']:.3g} [{v[m]['ci95'][0]:.3g}-{v[m]['ci95'][1]:.3g}]" for v in out.values()))
    t.add_row(
        "recall en/es/fr/de", *("/".join(f"{x:.2f}" for x in v["recall_by_language"].values()) for v in out.values())
    )
    return t


if __name__ == "__main__":
    main()
