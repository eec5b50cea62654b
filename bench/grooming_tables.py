"""Markdown tables from `safeguard grooming eval ... --leave-one-author-out --json` (for docs/grooming.md).

safeguard grooming eval datasets/grooming --format authors --leave-one-author-out --json > run.json
python bench/grooming_tables.py run.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

COLS = ("precision", "recall", "f0.5", "roc_auc", "in_time", "false_alerts_per_1000_benign", "stage_agreement")
LANGS = ("en", "es", "fr", "de")
DASH = "\u2013"  # the docs' tables use an en dash for ranges and missing values


def _cell(d: dict[str, Any], col: str) -> str:
    v, (lo, hi) = d[col]["value"], d[col]["ci95"]
    if col == "false_alerts_per_1000_benign":
        return f"{v:.0f} [{lo:.0f}{DASH}{hi:.0f}]"
    return f"{v:.2f} [{lo:.2f}{DASH}{hi:.2f}]"


def _langs(d: dict[str, Any]) -> str:
    rl = d["recall_by_language"]
    return " / ".join(
        f"{rl[lang]['recall']:.2f}" if lang in rl and rl[lang]["recall"] is not None else DASH for lang in LANGS
    )


def _sextortion(d: dict[str, Any]) -> str:
    sx = d["sextortion_rule"]
    return f"{sx['fired_on_sextortion']}/{sx['sextortion_conversations']}, {sx['fired_on_benign']}/{sx['benign']}"


def table(name: str, res: dict[str, Any]) -> str:
    out = [
        f"**{name}**",
        "",
        "| test author | convs (grooming) | threshold | precision | recall | F0.5 | ROC-AUC | in time "
        "| false alerts / 1,000 benign | stage agreement | recall en / es / fr / de | sextortion rule: sextortion, benign |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [(a, f, f"{f['threshold']:.2f}") for a, f in res["folds"].items()]
    rows.append(("**pooled**", res["pooled"], DASH))
    for a, f, thr in rows:
        out.append(
            f"| {a} | {f['conversations']} ({f['grooming']}) | {thr} | "
            + " | ".join(_cell(f, c) for c in COLS)
            + f" | {_langs(f)} | {_sextortion(f)} |"
        )
    return "\n".join(out)


def summary(report: dict[str, Any]) -> str:
    """One pooled row per system, side by side."""
    out = [
        "| system | precision | recall | F0.5 | ROC-AUC | in time | false alerts / 1,000 benign "
        "| stage agreement | recall en / es / fr / de | sextortion rule: sextortion, benign | thresholds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in report["systems"].items():
        f = res["pooled"]
        thr = [fold["threshold"] for fold in res["folds"].values()]
        out.append(
            f"| {name} | "
            + " | ".join(_cell(f, c) for c in COLS)
            + f" | {_langs(f)} | {_sextortion(f)} | {min(thr):.2f}{DASH}{max(thr):.2f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("run", type=Path, help="the JSON of an eval run (--leave-one-author-out --json)")
    report = json.loads(ap.parse_args().run.read_text(encoding="utf-8"))
    print(summary(report))
    print()
    for name, res in report["systems"].items():
        print(table(name, res))
        print()


if __name__ == "__main__":
    main()
