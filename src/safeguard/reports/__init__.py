"""Reports to law enforcement: NCMEC's CyberTipline and the UK NCA, from a confirmed case, sent exactly once.

:mod:`model` holds the state machine, :mod:`service` the report rows (drafting from a case, approval,
retraction, listing) and :mod:`drafts` the hook a case decision calls.
"""

from safeguard.reports.model import STATES
from safeguard.reports.service import ReportService, ReportView

__all__ = ["STATES", "ReportService", "ReportView"]
