"""The public surface a plug-in author or an embedding program builds on: named, documented, kept.

Each module below lists its public names in ``__all__``; every public class and function it defines is
listed (or renamed with an underscore); each listed class and function, and each abstract method of a
listed class, has a docstring stating its contract. Removing a name from ``__all__`` is a breaking change:
``KEPT`` below must be edited with it, on purpose.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC_MODULES = [
    "safeguard.content",
    "safeguard.errors",
    "safeguard.registry",
    "safeguard.resources",
    "safeguard.actions.base",
    "safeguard.detectors.base",
    "safeguard.signals.base",
    "safeguard.index.base",
    "safeguard.banks.sources.base",
]

#: names that outside plug-ins and integrations import today (a subset of each ``__all__``)
KEPT = {
    "safeguard.content": {"Content", "ContentKind", "Decision", "Finding", "Signal", "Verdict", "Action"},
    "safeguard.errors": {"SafeguardError", "InvalidInput", "NotFound", "ConfigError"},
    "safeguard.registry": {"Registry", "signals", "sources", "detectors", "actions"},
    "safeguard.resources": {"Resources"},
    "safeguard.actions.base": {"ActionHandler", "ActionContext"},
    "safeguard.detectors.base": {"Detector", "ScanContext"},
    "safeguard.signals.base": {"SignalType"},
    "safeguard.index.base": {"SignalIndex"},
    "safeguard.banks.sources.base": {"HashListFormat"},
}


def _defined_here(module: object) -> dict[str, object]:
    name = module.__name__  # type: ignore[attr-defined]
    return {
        k: v
        for k, v in vars(module).items()
        if not k.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v)) and v.__module__ == name
    }


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_lists_the_public_names_and_they_exist(name: str) -> None:
    module = importlib.import_module(name)
    listed = getattr(module, "__all__", None)
    assert listed is not None, f"{name} has no __all__"
    assert len(set(listed)) == len(listed)
    assert [n for n in listed if not hasattr(module, n)] == []
    assert sorted(set(_defined_here(module)) - set(listed)) == [], f"{name}: public but not in __all__"
    assert KEPT[name] <= set(listed), f"{name}: names removed from __all__"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_classes_functions_and_abstract_methods_are_documented(name: str) -> None:
    module = importlib.import_module(name)
    missing = []
    for attr in module.__all__:
        obj = getattr(module, attr)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)) or obj.__module__ != name:
            continue
        if not (obj.__doc__ or "").strip():
            missing.append(attr)
        if inspect.isclass(obj):
            for meth in getattr(obj, "__abstractmethods__", ()):
                if not (getattr(obj, meth).__doc__ or "").strip():
                    missing.append(f"{attr}.{meth}")
    assert missing == [], f"{name}: undocumented {missing}"
