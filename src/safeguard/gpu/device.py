"""Choosing the torch device, with a clear error when torch or CUDA is missing.

torch is an optional extra (``safeguard[gpu]``): the core install must not need it, so it is imported
here, on first use, and its absence becomes a :class:`~safeguard.errors.ConfigError` that says what to
install rather than an ImportError deep in a stack trace.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from safeguard.errors import ConfigError


def require_torch() -> ModuleType:
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise ConfigError(
            "the GPU path needs torch: pip install 'safeguard[gpu]' (or a torch build for your CUDA version)"
        ) from exc


def resolve_device(spec: str = "auto") -> Any:
    """``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``, ``cuda`` or ``cuda:N`` -> torch.device."""
    torch = require_torch()
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} asked for, but torch sees no CUDA GPU (torch {torch.__version__})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)")
    elif dev.type != "cpu":
        raise ConfigError(f"device {spec!r} is not supported: use auto, cpu, cuda or cuda:N")
    return dev


def describe_device(dev: Any) -> str:
    """One line naming what runs: the GPU's name, or the CPU with torch's thread count."""
    torch = require_torch()
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)}, torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"cpu (torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores)"
