"""Grooming detection: score conversations message by message, explain why, and protect the child.

Layers, from pure to IO:
``indicators`` (patterns per stage) → ``encoder`` (exemplar similarity) → ``features`` / ``state``
(O(1) per message) → ``model`` (calibrated logistic regression, JSON) → ``scorer`` (the pure core)
→ ``service`` (database state, findings, the engine's policy and actions) → ``api``/``cli``.
``corpus`` and ``training`` build the shipped model; ``loaders`` and ``metrics`` evaluate it.
"""

from safeguard.detectors.grooming.indicators import STAGES

__all__ = ["STAGES"]
