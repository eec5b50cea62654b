"""Detectors turn content and its signals into findings; registered under ``safeguard.detectors``."""

from safeguard.detectors.base import Detector, ScanContext

__all__ = ["Detector", "ScanContext"]
