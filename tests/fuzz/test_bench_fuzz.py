"""``bench/fuzz.py`` works as written, from the repository root, and reports its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_fuzz_runs_from_the_repo_root(tmp_path: Path) -> None:
    out = tmp_path / "fuzz.txt"
    proc = subprocess.run(
        [sys.executable, "bench/fuzz.py", "--seconds", "4", "--targets", "media:PNG,import", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = out.read_text()
    assert "peak RSS MB" in report and "No 5xx" in report
    rows = {line.split()[0]: line.split() for line in report.splitlines() if line.startswith(("media:PNG", "import"))}
    assert set(rows) == {"media:PNG", "import"}
    for cols in rows.values():
        inputs, n5xx, hangs = int(cols[1]), int(cols[4]), int(cols[6])
        assert inputs > 10 and n5xx == 0 and hangs == 0, cols
