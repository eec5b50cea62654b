"""Held-out synthetic results broken down by language and by negative scenario.

    python bench/grooming_breakdown.py

Shows where the shipped model is weak: English held-out conversations use wording (templates with
index 3 mod 4) that neither the patterns' examples nor the exemplars contain, while the shorter
Spanish, French and German template lists are partly shared between splits, which flatters them.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from rich.console import Console
from rich.table import Table

from safeguard.detectors.grooming import corpus, training
from safeguard.detectors.grooming.scorer import default_scorer


def main() -> None:
    sc = default_scorer()
    thr = sc.model.threshold
    res: dict[tuple[str, str], Counter[bool]] = defaultdict(Counter)
    for c in corpus.generate(2400, 20261123):
        if c.split != "test":
            continue
        rep = training.replay(sc, training.to_loaded(c))
        flagged = any(r >= thr for r in rep.risks)
        res[("positives" if c.label else "negatives", c.lang)][flagged] += 1
        if not c.label:
            res[("negatives", c.scenario)][flagged] += 1
    table = Table(title=f"held-out synthetic split, alert threshold {thr}")
    for col in ("group", "slice", "flagged", "of", "rate"):
        table.add_column(col)
    for (group, sl), v in sorted(res.items()):
        n = v[True] + v[False]
        table.add_row(group, sl, str(v[True]), str(n), f"{v[True] / n:.2f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
