"""Every benchmark starts when run as the docs write it: ``python bench/NAME.py`` from the repository root."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: scripts that need an optional extra, run only where it is installed
NEEDS = {"gpu_bench.py": "torch"}


def _scripts() -> list[Path]:
    out = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        if path.name.startswith("_"):
            continue
        extra = NEEDS.get(path.name)
        if extra is not None and importlib.util.find_spec(extra) is None:
            continue
        out.append(path)
    return out


def _help(path: Path) -> tuple[str, int, str]:
    proc = subprocess.run(
        [sys.executable, f"bench/{path.name}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    return path.name, proc.returncode, (proc.stderr.strip().splitlines() or [""])[-1]


def test_every_bench_script_starts_as_written() -> None:
    scripts = _scripts()
    assert any(p.name == "api_bench.py" for p in scripts)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_help, scripts))
    failures = [f"bench/{name}: {err}" for name, rc, err in results if rc != 0]
    assert not failures, "\n".join(failures)
