"""Human review: cases in queues, claims, decisions and their effects on banks (see service.py)."""

from safeguard.cases.evidence import EvidenceItem, list_evidence
from safeguard.cases.model import CATEGORIES, OUTCOMES, QUEUES, STATUSES, queue_for
from safeguard.cases.service import (
    CaseDetail,
    CaseFilter,
    CasePage,
    CaseService,
    CaseSummary,
    DecisionResult,
    TimelineEntry,
)

__all__ = [
    "CATEGORIES",
    "OUTCOMES",
    "QUEUES",
    "STATUSES",
    "CaseDetail",
    "CaseFilter",
    "CasePage",
    "CaseService",
    "CaseSummary",
    "DecisionResult",
    "EvidenceItem",
    "TimelineEntry",
    "list_evidence",
    "queue_for",
]
