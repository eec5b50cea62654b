"""Safeguard: a self-hostable child-safety engine."""

__version__ = "0.1.0"
