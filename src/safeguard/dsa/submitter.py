"""The statement submitter: sends pending statements of reasons to the Transparency Database in batches,
exactly once, resumable after a crash at any point.

Each batch is recorded *before* the call and again after the answer, each in its own transaction:

1. ``pending`` (or ``sending`` left by an earlier run) → ``sending`` with a new batch id, attempts + 1, and a
   ``statements.sending`` event naming every puid; committed.
2. ``POST /api/v1/statements``.
3. The answer, per statement, and a ``statements.submitted`` event; committed: stored → ``submitted`` with the
   database's uuid; already stored (a duplicate puid: an earlier attempt whose answer was lost) →
   ``submitted`` too; refused by validation → ``invalid`` with the database's errors, left for a person;
   refused only because others in the batch were → ``pending``, sent again in this run.

A process killed between 1 and 3 leaves the batch ``sending``: the next run sends it again, and the
database's refusal of a puid it already has (every statement's puid is its decision's id) makes that
harmless. Transient failures (5xx, 429, timeouts, after the client's retries) leave the batch ``sending``
for the next run, with a ``statements.send_failed`` event; a refused token stops the run and puts the
batch back to ``pending``. Run one submitter at a time (cron, or ``--watch``); two at once would still not
store anything twice, because the database refuses a puid it has.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.config import Settings
from safeguard.dsa.client import MAX_BATCH, BatchAnswer, DsaClient, DsaError
from safeguard.errors import ConfigError
from safeguard.store import Database
from safeguard.store.models import Statement, utcnow

__all__ = ["ACTOR", "StatementSubmitter", "SubmitResult"]

log = logging.getLogger(__name__)
ACTOR = "system:dsa"


@dataclass
class SubmitResult:
    submitted: list[str] = field(default_factory=list)  # puids stored by this run
    already: list[str] = field(default_factory=list)  # puids the database had already (an earlier lost answer)
    invalid: list[str] = field(default_factory=list)  # puids refused by validation: for a person
    waiting: list[str] = field(default_factory=list)  # puids left ``sending`` after a transient failure
    batches: int = 0
    error: str | None = None  # why the run stopped early (transient failure, refused token)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class StatementSubmitter:
    def __init__(self, db: Database, settings: Settings, client: DsaClient) -> None:
        if not 1 <= settings.dsa_batch_size <= MAX_BATCH:
            raise ConfigError(
                f"SAFEGUARD_DSA_BATCH_SIZE must be between 1 and {MAX_BATCH}, not {settings.dsa_batch_size}",
                code="invalid_setting",
            )
        self.db = db
        self.settings = settings
        self.client = client

    def run_once(self) -> SubmitResult:
        """Send every pending (and unfinished ``sending``) statement, batch after batch, until none is left or
        a batch cannot be sent now."""
        out = SubmitResult()
        while True:
            batch = self._claim()
            if batch is None:
                return out
            batch_id, puids, bodies = batch
            out.batches += 1
            try:
                answer = self.client.post_batch(bodies)
            except DsaError as exc:
                self._failed(batch_id, puids, exc, out)
                if exc.kind == "refused":  # this batch is settled (invalid): the next one may go
                    continue
                return out
            self._apply(batch_id, puids, answer, out)

    # -- the steps --------------------------------------------------------------------------------------
    def _claim(self) -> tuple[str, list[str], list[dict[str, Any]]] | None:
        """Step 1: the next batch, marked ``sending`` under a new batch id (committed before the call)."""
        batch_id = "b_" + secrets.token_hex(12)
        with self.db.write() as s:
            rows = list(
                s.execute(
                    select(Statement)
                    .where(Statement.state.in_(("sending", "pending")))
                    .order_by(Statement.id)
                    .limit(self.settings.dsa_batch_size)
                    .with_for_update()
                ).scalars()
            )
            if not rows:
                return None
            now = utcnow()
            resent = [r.puid for r in rows if r.state == "sending"]
            for r in rows:
                r.state, r.batch, r.attempts, r.updated_at = "sending", batch_id, r.attempts + 1, now
            _event(
                s,
                "statements.sending",
                batch_id,
                puids=[r.puid for r in rows],
                resent_after_unknown_outcome=resent,
                url=self.client.base,
            )
            return batch_id, [r.puid for r in rows], [dict(r.body) for r in rows]

    def _rows(self, s: Session, batch_id: str) -> dict[str, Statement]:
        q = select(Statement).where(Statement.batch == batch_id).with_for_update()
        return {r.puid: r for r in s.execute(q).scalars()}

    def _apply(self, batch_id: str, puids: list[str], a: BatchAnswer, out: SubmitResult) -> None:
        """Step 3: the answer per statement, committed with its event."""
        resend = [puids[i] for i in a.resend(len(puids))]
        with self.db.write() as s:
            rows = self._rows(s, batch_id)
            now = utcnow()
            for i, uuid in a.created.items():
                r = rows[puids[i]]
                r.state, r.uuid, r.submitted_at, r.errors, r.batch, r.updated_at = (
                    "submitted",
                    uuid,
                    now,
                    None,
                    None,
                    now,
                )
            for i in a.existing:
                r = rows[puids[i]]
                r.state, r.submitted_at, r.errors, r.batch, r.updated_at = "submitted", now, None, None, now
            for i, errs in a.invalid.items():
                r = rows[puids[i]]
                r.state, r.errors, r.batch, r.updated_at = "invalid", dict(errs), None, now
            for p in resend:
                r = rows[p]
                r.state, r.batch, r.updated_at = "pending", None, now
            _event(
                s,
                "statements.submitted",
                batch_id,
                http_status=a.http_status,
                submitted=[puids[i] for i in a.created],
                already_submitted=[puids[i] for i in sorted(a.existing)],
                invalid=[puids[i] for i in sorted(a.invalid)],
                resend=resend,
            )
        out.submitted += [puids[i] for i in a.created]
        out.already += [puids[i] for i in sorted(a.existing)]
        out.invalid += [puids[i] for i in sorted(a.invalid)]

    def _failed(self, batch_id: str, puids: list[str], exc: DsaError, out: SubmitResult) -> None:
        """The call failed as a whole: transient (left ``sending``), token refused (back to ``pending``), or the
        request refused (every statement ``invalid``)."""
        with self.db.write() as s:
            rows = self._rows(s, batch_id)
            now = utcnow()
            for r in rows.values():
                r.updated_at = now
                if exc.kind == "auth":
                    r.state, r.batch = "pending", None
                elif exc.kind == "refused":
                    r.state, r.batch = "invalid", None
                    r.errors = {"message": exc.message, "http_status": exc.http_status}
            _event(
                s,
                "statements.send_failed",
                batch_id,
                kind=exc.kind,
                error=str(exc),
                http_status=exc.http_status,
                puids=puids,
            )
        if exc.kind == "refused":
            out.invalid += puids
        else:
            out.waiting += puids
            out.error = str(exc)
            log.warning("statements of reasons: batch %s not sent: %s", batch_id, exc)


def _event(s: Session, type_: str, batch_id: str, **payload: Any) -> None:
    events.append_many(s, [events.EventDraft(type_, ACTOR, ("statement_batch", batch_id), payload)])
