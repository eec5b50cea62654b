"""bench/gpu_bench.py on the CPU, small: both matchers in one run find every planted entry, with no drift
in the exact decode mode (the GPU figures themselves need a GPU; docs/performance.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("threatexchange")

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_bench_runs_both_matchers_on_the_cpu() -> None:
    cmd = [sys.executable, "bench/gpu_bench.py", "--device", "cpu", "--size", "320x240", "--count", "16"]
    cmd += ["--distinct", "16", "--ref-count", "16", "--bank", "40000", "--batch-size", "8"]
    cmd += ["--decode", "exact", "--matcher", "scan,index"]
    env = {**os.environ, "COLUMNS": "250"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    assert re.search(r"40,000 PDQ hashes \(16 planted.*index matcher, built on the CPU", out)
    rows = [
        [c.strip() for c in line.split("│") if c.strip()] for line in out.splitlines() if "Safeguard batched" in line
    ]
    assert [r[0].rsplit(", ", 1)[1] for r in rows] == ["popcount matcher", "index matcher"]
    for r in rows:
        assert r[2] == "16" and float(r[3]) > 0  # images, img/s
        assert r[8:] == ["0.00", "0", "0", "16/16"]  # drift mean, p99, max; every planted entry found
    assert len(re.findall(r"match alone: 8 queries x 40,000 hashes", out)) == 2
