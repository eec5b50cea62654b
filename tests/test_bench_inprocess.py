"""bench/inprocess.py: drives the app in process, hits blocked and misses allowed, and keeps its data dir."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(data_dir: Path) -> str:
    env = {**os.environ, "COLUMNS": "200", "SAFEGUARD_LOG_LEVEL": "warning"}
    cmd = [sys.executable, "-m", "bench.inprocess", "--data-dir", str(data_dir), "--entries", "2000", "--scans", "200"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
    return out.stdout


def _rows(text: str) -> dict[str, list[float]]:
    rows, verdicts = {}, {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if cells and cells[0] in ("hit", "miss"):
            rows[cells[0]] = [float(c.replace(",", "")) for c in cells[1:6]]
            verdicts[cells[0]] = cells[6]
    assert verdicts == {k: {"hit": "block:200", "miss": "allow:200"}[k] for k in rows}
    return rows


def test_inprocess_bench_measures_hits_and_misses_and_reuses_its_bank(tmp_path: Path) -> None:
    first = _run(tmp_path / "d")
    assert re.search(r"filled a bank of 2,001 PDQ entries", first)
    rows = _rows(first)
    assert set(rows) == {"hit", "miss"}
    for scans, rate, cpu, recorder_cpu, batch in rows.values():
        assert scans == 200 and rate > 0 and cpu > 0 and 0 < recorder_cpu < cpu and batch >= 1
    assert rows["hit"][3] > rows["miss"][3]  # a hit's write (case, outbox row, four events) costs more

    second = _run(tmp_path / "d")
    assert "filled a bank" not in second and set(_rows(second)) == {"hit", "miss"}
