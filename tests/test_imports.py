"""Each module imports on its own, in a fresh interpreter.

The test suite imports ``safeguard.api`` first (conftest), which hides import cycles that only bite
when a command starts from another module: ``safeguard streams watch`` once died with an ImportError
because ``workers/streams`` imported the API's metrics. Here every module is the first one imported.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import safeguard

SRC = Path(safeguard.__file__).resolve().parent
#: modules that need an optional extra (torch) only when it is installed
OPTIONAL = {
    "safeguard.gpu.decode": "torch",
    "safeguard.gpu.match": "torch",
    "safeguard.gpu.pdq": "torch",
    "safeguard.gpu.pipeline": "torch",
}


def _modules() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        if "migrations" in rel.parts:  # alembic loads these by path, never by import
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        extra = OPTIONAL.get(name)
        if extra is not None and importlib.util.find_spec(extra) is None:
            continue
        out.append(name)
    return out


def _import_alone(name: str) -> tuple[str, int, str]:
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=120)
    return name, proc.returncode, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    modules = _modules()
    assert "safeguard.workers.streams" in modules and "safeguard.cli" in modules
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_import_alone, modules))
    failures = [f"{name}: {err}" for name, rc, err in results if rc != 0]
    assert not failures, "\n".join(failures)
