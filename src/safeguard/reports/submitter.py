"""The submitter: moves approved reports through NCMEC's flow, exactly once, resumable after a crash.

Each step is recorded in the report's row *before* the call that it starts and again after NCMEC's
answer, each in its own transaction:

- ``approved``: the XML is built and validated; a report that does not validate (or misses reporter
  settings) stays ``approved`` with ``validation`` set, and nothing is sent. Else → ``submitting``.
- ``submitting``: ``POST /submit``; NCMEC's report id is committed (→ ``submitted``) before any file is
  uploaded. A restart that finds ``submitting`` without an id cannot know whether NCMEC opened a report:
  it submits again; the orphan, never finished, is deleted by NCMEC after its timeout (documented
  behaviour) and never becomes a CyberTip.
- ``submitted``: per file, ``uploading`` is committed, then ``POST /upload`` (bytes decrypted from the vault
  in memory), then the file id is committed, then ``POST /fileinfo``. A restart that finds a file
  ``uploading`` cannot know whether NCMEC has it: rather than risk a file twice, the report is retracted
  at NCMEC and submitted afresh (``report.redone``). → ``files_uploaded``.
- ``files_uploaded``: ``POST /finish`` (NCMEC's "already finished" counts as done) → ``finished``.
- ``retracted`` with ``step == "retract_pending"``: ``POST /retract`` at NCMEC.

NCMEC answering "report does not exist" (auto-cancelled after its timeout) redoes the report from
``/submit``. Permanent errors leave the report ``failed`` with the error and the step; transient ones
(after the client's retries) leave it where it was, for the next run.

Several submitters may run at once (the service's worker in each process, ``safeguard reports submit`` from
cron): each works a report only while it holds that report's lock (:mod:`safeguard.reports.locks`), and
skips it (``busy``) while another does.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safeguard.config import Settings
from safeguard.errors import SafeguardError
from safeguard.evidence.vault import EvidenceVault
from safeguard.reports.gather import FilePlan, gather, missing
from safeguard.reports.locks import ReportLocks
from safeguard.reports.model import ACTIVE
from safeguard.reports.ncmec.client import GONE, NcmecClient, NcmecError
from safeguard.reports.ncmec.xml import FileData, file_details_xml, report_xml, validate
from safeguard.reports.service import record
from safeguard.store import Database
from safeguard.store.models import EvidenceItem, Report, utcnow

log = logging.getLogger(__name__)
ACTOR = "system:reports"


@dataclass
class RunResult:
    finished: list[int] = field(default_factory=list)
    invalid: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)  # a transient error: the next run goes on
    retracted: list[int] = field(default_factory=list)
    overdue: list[int] = field(default_factory=list)  # flagged report.overdue in this run
    busy: list[int] = field(default_factory=list)  # another submitter holds the report: left to it

    def to_dict(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in self.__dict__.items()}


class _Redo(Exception):
    """The report at NCMEC cannot be continued safely: retract it there (if it has an id) and submit afresh."""


def exif_of(data: bytes) -> dict[str, str]:
    """The EXIF fields of an image kept in the vault (names as Pillow knows them), for the file details."""
    try:
        from PIL import ExifTags, Image

        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif()
            return {str(ExifTags.TAGS.get(k, k)): str(v)[:500] for k, v in exif.items() if not isinstance(v, bytes)}
    except Exception:  # not an image, or no EXIF: nothing to report
        return {}


def hold_items(s: Session, r: Report, settings: Settings) -> None:
    """A submitted report keeps its items: retained at least ``SAFEGUARD_VAULT_RETENTION_DAYS`` after the
    submission (18 U.S.C. 2258A: one year), whatever the case's own retention said; an event per report."""
    if not r.item_ids or r.submitted_at is None:
        return
    until = r.submitted_at + timedelta(days=settings.vault_retention_days)
    items = list(s.execute(select(EvidenceItem).where(EvidenceItem.id.in_(r.item_ids))).scalars())
    extended = []
    for it in items:
        if it.retain_until < until:
            it.retain_until = until
            extended.append(it.id)
    record(s, r, "report.evidence_held", ACTOR, items=extended, retain_until=until.isoformat())


class Submitter:
    def __init__(self, db: Database, settings: Settings, client: NcmecClient, vault: EvidenceVault | None = None):
        self.db = db
        self.settings = settings
        self.client = client
        self.vault = vault or EvidenceVault(settings, db)
        self.locks = ReportLocks(db, settings)

    def run_once(self) -> RunResult:
        from safeguard.reports.timeliness import check_overdue

        out = RunResult()
        out.overdue = check_overdue(self.db, self.settings)
        with self.db.read() as s:
            ids = list(
                s.execute(
                    select(Report.id)
                    .where(
                        Report.transport == "ncmec",
                        (Report.state.in_(ACTIVE))
                        | ((Report.state == "retracted") & (Report.step == "retract_pending")),
                    )
                    .order_by(Report.id)
                ).scalars()
            )
        for rid in ids:
            with self.locks.hold(rid) as mine:
                if not mine:
                    out.busy.append(rid)
                elif self._workable(rid):  # read again under the lock: another may have finished it
                    self.advance(rid, out)
        return out

    def _workable(self, rid: int) -> bool:
        with self.db.read() as s:
            r = s.get(Report, rid)
            if r is None or r.transport != "ncmec":
                return False
            return r.state in ACTIVE or (r.state == "retracted" and r.step == "retract_pending")

    # -- one report ------------------------------------------------------------------------------------
    def advance(self, rid: int, out: RunResult) -> None:
        for _ in range(3):  # a redo starts the flow again, at most twice per run
            try:
                state = self._state(rid)
                if state == "retracted":
                    self._retract_at_ncmec(rid)
                    out.retracted.append(rid)
                    return
                if state == "approved" and not self._validate(rid):
                    out.invalid.append(rid)
                    return
                if state in ("approved", "submitting"):
                    self._submit(rid)
                if self._state(rid) == "submitted":
                    self._files(rid)
                if self._state(rid) == "files_uploaded":
                    self._finish(rid)
                    out.finished.append(rid)
                return
            except _Redo:
                continue
            except NcmecError as exc:
                if exc.code == GONE:
                    self._redo(rid, reason=str(exc), retract=False)
                    continue
                if exc.transient:
                    self._note(rid, exc)
                    out.waiting.append(rid)
                else:
                    self._fail(rid, exc.step, str(exc))
                    out.failed.append(rid)
                return
            except SafeguardError as exc:  # a vault item that fails decryption, a config error
                self._fail(rid, "files", f"{exc.code}: {exc.message}")
                out.failed.append(rid)
                return
        self._fail(rid, "submit", "redone twice in one run; left for a person to look at")
        out.failed.append(rid)

    def _state(self, rid: int) -> str:
        with self.db.read() as s:
            r = s.get(Report, rid)
            return r.state if r is not None else "gone"

    def _validate(self, rid: int) -> bool:
        with self.db.write() as s:
            r = s.get(Report, rid, with_for_update=True)
            assert r is not None
            data, files = gather(s, r, self.settings)
            problems = validate(report_xml(data)) + missing(data, files)
            if problems:
                if problems != list(r.validation or []):
                    r.validation = problems
                    r.updated_at = utcnow()
                    record(s, r, "report.invalid", ACTOR, problems=problems)
                return False
            r.validation = []
            return True

    def _submit(self, rid: int) -> None:
        with self.db.write() as s:
            r = s.get(Report, rid, with_for_update=True)
            assert r is not None
            data, _ = gather(s, r, self.settings)
            doc = report_xml(data)
            unknown = r.state == "submitting"
            r.state, r.step, r.updated_at = "submitting", "submit", utcnow()
            record(s, r, "report.submitting", ACTOR, after_unknown_outcome=unknown)
        a = self.client.submit(doc)
        with self.db.write() as s:
            r = s.get(Report, rid, with_for_update=True)
            assert r is not None
            r.ncmec_report_id, r.state, r.step = a.report_id, "submitted", "submitted"
            r.submitted_at = r.submitted_at or utcnow()
            r.files, r.error, r.error_step, r.updated_at = {}, None, None, utcnow()
            record(s, r, "report.submitted", ACTOR, ncmec_report_id=a.report_id)
            hold_items(s, r, self.settings)

    def _files(self, rid: int) -> None:
        with self.db.read() as s:
            r = s.get(Report, rid)
            assert r is not None
            data, plans = gather(s, r, self.settings)
            ncmec_id = str(r.ncmec_report_id)
            files = dict(r.files or {})
        for plan in plans:
            if not plan.has_bytes:
                continue
            got = files.get(plan.key) or {}
            if got.get("state") == "uploading":
                self._redo(rid, reason=f"upload of {plan.key} has an unknown outcome", retract=True)
                raise _Redo
            if got.get("state") != "uploaded":
                got = self._upload(rid, ncmec_id, plan, data.transcript, data.category)
            if not got.get("described"):
                self._describe(rid, ncmec_id, plan, got, data.category)
        with self.db.write() as s:
            r = s.get(Report, rid, with_for_update=True)
            assert r is not None
            r.state, r.step, r.updated_at = "files_uploaded", "files_uploaded", utcnow()
            record(s, r, "report.files_uploaded", ACTOR, files=len(r.files or {}))

    def _bytes(self, rid: int, plan: FilePlan, transcript: str, case_id: int) -> bytes:
        if plan.key == "transcript":
            return transcript.encode()
        _, data = self.vault.read(plan.key, actor=ACTOR, reason=f"upload to NCMEC for report {rid}", case_id=case_id)
        return data

    def _set_file(self, rid: int, key: str, value: dict[str, Any], event: str) -> None:
        with self.db.write() as s:
            r = s.get(Report, rid, with_for_update=True)
            assert r is not None
            files = dict(r.files or {})
            files[key] = value
            r.files, r.step, r.updated_at = files, f"{event}:{key}", utcnow()
            record(s, r, f"report.{event}", ACTOR, key=key, **{k: v for k, v in value.items() if k != "state"})

    def _upload(self, rid: int, ncmec_id: str, plan: FilePlan, transcript: str, category: str) -> dict[str, Any]:
        with self.db.read() as s:
            r = s.get(Report, rid)
            assert r is not None
            case_id = r.case_id
        data = self._bytes(rid, plan, transcript, case_id)
        self._set_file(rid, plan.key, {"state": "uploading"}, "file_uploading")
        a = self.client.upload(ncmec_id, plan.file_name, data)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if a.md5 and a.md5.lower() != md5:
            raise NcmecError(1111, f"NCMEC's MD5 {a.md5} differs from the file's {md5}", "upload")
        value = {
            "state": "uploaded",
            "file_id": a.file_id,
            "md5": md5,
            "exif": exif_of(data) if plan.key != "transcript" else {},
        }
        self._set_file(rid, plan.key, value, "file_uploaded")
        return value

    def _describe(self, rid: int, ncmec_id: str, plan: FilePlan, got: dict[str, Any], category: str) -> None:
        details = FileData(
            ncmec_report_id=ncmec_id,
            file_id=str(got["file_id"]),
            file_name=plan.file_name,
            uploaded_at=plan.uploaded_at,
            hashes=plan.hashes,
            category=category,
            viewed_by_person=plan.key != "transcript",  # a moderator confirmed the case by looking at it
            ip=plan.ip,
            exif=dict(got.get("exif") or {}),
            note="Conversation excerpt: the messages the case's evidence names." if plan.key == "transcript" else "",
        )
        doc = file_details_xml(details)
        errors = validate(doc)
        if errors:
            raise NcmecError(4100, "file details do not validate: " + "; ".join(errors[:3]), "fileinfo")
        self.client.fileinfo(doc)
        self._set_file(rid, plan.key, dict(got, described=True), "file_described")

    def _finish(self, rid: int) -> None:
        with self.db.read() as s:
            r = s.get(Report, rid)
            assert r is not None
            ncmec_id = str(r.ncmec_report_id)
        try:
            self.client.finish(ncmec_id)
            already = False
        except NcmecError as exc:
            if exc.code != 5102:
                raise
            already = True  # finished before a crash, not recorded: done
        with self.db.write() as s:
            r = s.get(Report, rid, with_for_update=True)
            assert r is not None
            r.state, r.step, r.finished_at, r.updated_at = "finished", "finished", utcnow(), utcnow()
            record(s, r, "report.finished", ACTOR, ncmec_report_id=ncmec_id, already_finished=already)

    def _redo(self, rid: int, *, reason: str, retract: bool) -> None:
        with self.db.read() as s:
            r = s.get(Report, rid)
            assert r is not None
            old = r.ncmec_report_id
        if retract and old:
            try:
                self.client.retract(old)
            except NcmecError as exc:
                if exc.code not in (5101, GONE):
                    raise
        with self.db.write() as s:
            r = s.get(Report, rid, with_for_update=True)
            assert r is not None
            r.state, r.step, r.ncmec_report_id, r.files, r.updated_at = "approved", "", None, {}, utcnow()
            record(s, r, "report.redone", ACTOR, reason=reason, retracted_ncmec_report_id=old if retract else None)

    def _retract_at_ncmec(self, rid: int) -> None:
        with self.db.read() as s:
            r = s.get(Report, rid)
            assert r is not None
            ncmec_id = r.ncmec_report_id
        if ncmec_id:
            try:
                self.client.retract(ncmec_id)
            except NcmecError as exc:
                if exc.code not in (5101, GONE):
                    raise
        with self.db.write() as s:
            r = s.get(Report, rid, with_for_update=True)
            assert r is not None
            r.step, r.updated_at = "retracted_at_ncmec", utcnow()
            record(s, r, "report.retracted_at_ncmec", ACTOR, ncmec_report_id=ncmec_id)

    def _note(self, rid: int, exc: NcmecError) -> None:
        with self.db.write() as s:
            r = s.get(Report, rid, with_for_update=True)
            assert r is not None
            r.error, r.error_step, r.updated_at = str(exc), exc.step, utcnow()
            record(s, r, "report.step_failed", ACTOR, step=exc.step, error=str(exc), code=exc.code, transient=True)

    def _fail(self, rid: int, step: str, error: str) -> None:
        with self.db.write() as s:
            r = s.get(Report, rid, with_for_update=True)
            assert r is not None
            r.state, r.error, r.error_step, r.updated_at = "failed", error, step, utcnow()
            record(s, r, "report.failed", ACTOR, step=step, error=error)
