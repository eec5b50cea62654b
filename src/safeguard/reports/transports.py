"""The seam for sending reports: a :class:`ReportTransport` moves approved reports to their recipient.
Implementations register under the ``safeguard.reporters`` entry point group (pyproject.toml); Safeguard
ships two: ``ncmec`` (the CyberTipline API, :class:`~safeguard.reports.submitter.Submitter`) and ``nca``
(a signed package written to a folder for the operator to hand over, :mod:`safeguard.reports.package`).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

from safeguard.config import Settings
from safeguard.evidence.vault import EvidenceVault
from safeguard.ledger import Signer
from safeguard.reports.ncmec.client import NcmecClient
from safeguard.reports.submitter import RunResult, Submitter
from safeguard.store import Database
from safeguard.store.models import Report

GROUP = "safeguard.reporters"


@runtime_checkable
class ReportTransport(Protocol):
    name: str

    def send(self, report_id: int) -> RunResult:
        """Move one report as far as it can go now; what happened, by outcome."""
        ...


class NcmecTransport:
    name = "ncmec"

    def __init__(self, db: Database, settings: Settings) -> None:
        self.submitter = Submitter(db, settings, NcmecClient.from_settings(settings))

    def send(self, report_id: int) -> RunResult:
        out = RunResult()
        self.submitter.advance(report_id, out)
        return out


class NcaTransport:
    """Writes the signed package to ``DATA_DIR/nca-outbox/report-<id>.zip``; handing it to the NCA is a person's act."""

    name = "nca"

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.outbox = Path(settings.data_dir) / "nca-outbox"

    def send(self, report_id: int) -> RunResult:
        from safeguard.reports.package import build, record_made

        out = RunResult()
        self.outbox.mkdir(parents=True, exist_ok=True)
        with self.db.read() as s:
            r = s.get(Report, report_id)
            if r is None or r.state != "approved":
                return out
            blob = build(
                s,
                r,
                self.settings,
                EvidenceVault(self.settings, self.db),
                Signer.from_settings(self.settings),
                actor="system:reports",
            )
        (self.outbox / f"report-{report_id}.zip").write_bytes(blob)
        with self.db.write() as s:
            record_made(s, report_id, blob, actor="system:reports", via="nca-outbox", sealed=False)
        out.finished.append(report_id)
        return out


def transports() -> dict[str, type]:
    """The installed transports by name (the ``safeguard.reporters`` entry points)."""
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}
