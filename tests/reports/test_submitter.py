"""The submitter against a local NCMEC (loopback): the whole flow, retries, NCMEC's errors, resumption."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safeguard.banks import BankService
from safeguard.engine import Engine
from safeguard.reports import ReportService
from safeguard.reports.ncmec.client import NcmecClient, NcmecError
from safeguard.reports.submitter import Submitter
from safeguard.store.models import Event, EvidenceItem, utcnow
from tests.helpers.reports import LEAD2, approved, ncmec_settings, report, submitter
from tests.reports.ncmec_server import PASSWORD, USER, FakeNcmec, Fault


@pytest.fixture
def ncmec() -> Iterator[FakeNcmec]:
    fake = FakeNcmec().start()
    yield fake
    fake.stop()


def test_approved_report_is_submitted_uploaded_described_and_finished(
    engine: Engine, banks: BankService, ncmec: FakeNcmec
) -> None:
    rid = approved(engine, banks)
    s = ncmec_settings(engine, ncmec)
    got = submitter(engine, s).run_once()
    assert got.finished == [rid]
    r = report(engine, rid)
    assert r.state == "finished" and r.ncmec_report_id is not None and r.finished_at is not None
    [at] = ncmec.finished()
    assert str(at.id) == r.ncmec_report_id and len(at.files) == 1
    [f] = at.files.values()
    assert f["details"] is not None and b"<industryClassification>A1</industryClassification>" in f["details"]
    assert b"<espIdentifier>u-1</espIdentifier>" in at.xml
    assert submitter(engine, s).run_once().finished == []  # nothing sent twice
    with engine.db.read() as db:  # the evidence is kept a retention period past the submission
        [item] = db.execute(select(EvidenceItem).where(EvidenceItem.id.in_(r.item_ids))).scalars()
        assert r.submitted_at is not None
        assert item.retain_until >= r.submitted_at + timedelta(days=s.vault_retention_days)
    with engine.db.read() as db:
        types = list(db.execute(select(Event.type).where(Event.subject_kind == "report").order_by(Event.seq)).scalars())
    assert (
        types[-6:]
        == [
            "report.submitting",
            "report.submitted",
            "report.file_uploading",
            "report.file_uploaded",
            "report.file_described",
            "report.files_uploaded",
        ]
        or "report.finished" in types
    )


def test_invalid_or_incomplete_report_stays_approved_and_nothing_is_sent(
    engine: Engine, banks: BankService, ncmec: FakeNcmec
) -> None:
    rid = approved(engine, banks)
    s = ncmec_settings(engine, ncmec).with_(reporter_organisation="")
    assert submitter(engine, s).run_once().invalid == [rid]
    r = report(engine, rid)
    assert r.state == "approved" and "SAFEGUARD_REPORTER_ORGANISATION is not set" in r.validation
    assert ncmec.reports == {}


def test_5xx_and_slow_answers_are_retried(engine: Engine, banks: BankService, ncmec: FakeNcmec) -> None:
    rid = approved(engine, banks)
    ncmec.faults += [Fault("/ispws/submit", "500", 2), Fault("/ispws/finish", "code:1000", 1)]
    s = ncmec_settings(engine, ncmec)
    assert submitter(engine, s).run_once().finished == [rid]
    assert len(ncmec.reports) == 1 and len(ncmec.finished()) == 1


def test_timeouts_leave_the_report_waiting_then_it_resumes(
    engine: Engine, banks: BankService, ncmec: FakeNcmec
) -> None:
    rid = approved(engine, banks)
    ncmec.slow_seconds = 1.0
    ncmec.faults.append(Fault("/ispws/finish", "slow", 2))
    s = ncmec_settings(engine, ncmec)
    import httpx

    from safeguard.egress import EgressPolicy, checked_client

    http = checked_client(EgressPolicy.from_settings(s), httpx.Timeout(0.3))
    sub = Submitter(engine.db, s, NcmecClient(s.ncmec_url, USER, PASSWORD, http=http, attempts=2, backoff=0.01))
    got = sub.run_once()
    assert got.waiting == [rid]
    r = report(engine, rid)
    assert r.state == "files_uploaded" and r.error_step == "finish" and "did not answer" in (r.error or "")
    assert sub.run_once().finished == [rid]
    assert len(ncmec.finished()) == 1


def test_wrong_credentials_fail_clearly_and_a_retry_resumes_without_a_second_submit(
    engine: Engine, banks: BankService, ncmec: FakeNcmec
) -> None:
    rid = approved(engine, banks)
    assert submitter(engine, ncmec_settings(engine, ncmec, password="wrong")).run_once().failed == [rid]
    r = report(engine, rid)
    assert r.state == "failed" and r.error_step == "submit" and "SAFEGUARD_NCMEC_PASSWORD" in (r.error or "")
    assert "wrong" not in (r.error or "")
    ncmec.faults.append(Fault("/ispws/finish", "code:3300", 1))
    ReportService(engine.db, engine.settings).approve(LEAD2, rid)
    s = ncmec_settings(engine, ncmec)
    assert submitter(engine, s).run_once().failed == [rid]  # finish refused: failed after the files
    assert report(engine, rid).error_step == "finish"
    ReportService(engine.db, engine.settings).approve(LEAD2, rid)  # resumes at its files: no second submit
    assert submitter(engine, s).run_once().finished == [rid]
    assert len(ncmec.reports) == 1 and len(ncmec.finished()) == 1


def test_auto_cancelled_report_is_redone(engine: Engine, banks: BankService, ncmec: FakeNcmec) -> None:
    rid = approved(engine, banks)
    ncmec.faults.append(Fault("/ispws/upload", "code:5001", 1))
    assert submitter(engine, ncmec_settings(engine, ncmec)).run_once().finished == [rid]
    assert len(ncmec.reports) == 2 and len(ncmec.finished()) == 1


def test_retract_reaches_ncmec_once(engine: Engine, banks: BankService, ncmec: FakeNcmec) -> None:
    rid = approved(engine, banks)
    s = ncmec_settings(engine, ncmec)
    ncmec.faults.append(Fault("/ispws/finish", "code:1300", 10))
    submitter(engine, s).run_once()
    assert report(engine, rid).state == "files_uploaded"
    ReportService(engine.db, engine.settings).retract(LEAD2, rid, reason="sent by mistake")
    assert submitter(engine, s).run_once().retracted == [rid]
    [at] = ncmec.reports.values()
    assert at.retracted and not at.finished
    assert report(engine, rid).step == "retracted_at_ncmec"
    assert submitter(engine, s).run_once().retracted == []


def test_client_refuses_plain_http_and_unsealed_passwords(engine: Engine) -> None:
    from safeguard.errors import ConfigError

    with pytest.raises(ConfigError):
        NcmecClient.from_settings(engine.settings.with_(ncmec_username="u", ncmec_password="plain"))
    with pytest.raises(ConfigError):
        NcmecClient("http://example.org/ispws", "u", "p", http=None)  # type: ignore[arg-type]
    shown = repr(NcmecClient("https://exttest.cybertip.org/ispws", "u", "pw-x9", http=None))  # type: ignore[arg-type]
    assert "pw-x9" not in shown
    assert NcmecError(2000, "x", "submit").transient is False and NcmecError(-1, "x", "upload").transient


def test_overdue_report_is_flagged_once_with_a_webhook_and_metrics_show_timeliness(
    engine: Engine, banks: BankService, ncmec: FakeNcmec, app_client: TestClient
) -> None:
    from safeguard.reports.timeliness import check_overdue, summary
    from safeguard.store.models import OutboxMessage

    rid = approved(engine, banks)
    s = ncmec_settings(engine, ncmec).with_(webhook_url="http://127.0.0.1:9/hook")
    later = utcnow() + timedelta(hours=25)
    assert check_overdue(engine.db, s, now=later) == [rid]
    assert check_overdue(engine.db, s, now=later) == []  # once
    with engine.db.read() as db:
        topics = list(db.execute(select(OutboxMessage.topic)).scalars())
    assert "report.overdue" in topics
    assert submitter(engine, s).run_once().finished == [rid]
    got = summary(engine.db)
    assert got["counts"] == {"finished": 1} and "0.5" in got["confirmation_to_submission_seconds"]
    text = app_client.get("/metrics").text
    assert 'safeguard_reports{state="finished"} 1.0' in text
    assert 'safeguard_report_seconds{interval="confirmation_to_submission",quantile="0.5"}' in text
