"""Indexes: "which bank entries are within distance d of this signal", fast.

``base.SignalIndex`` is the protocol; ``exact.ExactIndex`` serves cryptographic hashes and
``hamming.HammingIndex`` serves bit-string hashes such as PDQ. ``manager.IndexSet`` holds one index
per signal type for a process, loads it from a snapshot at start and patches it from the
``entry_changes`` log as banks change.
"""

from safeguard.index.base import SignalIndex, index_for

__all__ = ["SignalIndex", "index_for"]
