"""Signal types: one module per type, registered under the ``safeguard.signals`` entry point group."""

from safeguard.signals.base import SignalType, compute_signals, get_signal_type, signal_types

__all__ = ["SignalType", "compute_signals", "get_signal_type", "signal_types"]
