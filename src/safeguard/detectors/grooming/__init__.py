"""Grooming detection: score conversations message by message, explain why, and protect the child.

Layers, from pure to IO:
``indicators`` (patterns per stage) → ``encoder`` (exemplar similarity) → ``features`` / ``state``
(O(1) per message) → ``model`` (calibrated logistic regression, JSON) → ``scorer`` (the pure core)
→ ``detector`` (the registered, stateful :class:`~.detector.GroomingDetector`: database state and
findings, inside the engine's decision transaction) → ``service`` (the conversations API's thin layer
over :meth:`Engine.scan_in`) → ``api``/``cli``.
``corpus`` and ``training`` build the shipped model; ``loaders`` and ``metrics`` evaluate it.
"""

from safeguard.detectors.grooming.indicators import STAGES

__all__ = ["STAGES"]
