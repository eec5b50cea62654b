"""User reports (``POST /v1/user-reports``): scanned, filed in the user_reports queue, answered with advice."""

from safeguard.user_reports.advice import LOCALES, advice, locale_of
from safeguard.user_reports.service import REASONS, ReportInput, ReportResult, UserReportService

__all__ = ["LOCALES", "REASONS", "ReportInput", "ReportResult", "UserReportService", "advice", "locale_of"]
