"""The continuous submitter (SAFEGUARD_REPORTS_SUBMIT_INTERVAL_SECONDS) in the service's lifespan, against the
local NCMEC; and the per-report lock that lets several submitters run at once without sending twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial

import pytest
from fastapi.testclient import TestClient

from safeguard.api.app import create_app
from safeguard.banks import BankService
from safeguard.engine import Engine
from safeguard.reports.locks import ReportLocks
from safeguard.reports.ncmec.client import NcmecClient
from safeguard.reports.submitter import RunResult
from safeguard.workers.report_submitter import ReportSubmitterWorker
from tests.helpers.reports import approved, ncmec_settings, report, submitter
from tests.reports.ncmec_server import FakeNcmec, Fault


@pytest.fixture
def ncmec() -> Iterator[FakeNcmec]:
    fake = FakeNcmec().start()
    yield fake
    fake.stop()


def test_service_worker_picks_up_an_approved_report_and_finishes_it(
    engine: Engine, banks: BankService, ncmec: FakeNcmec
) -> None:
    rid = approved(engine, banks)
    s = ncmec_settings(engine, ncmec).with_(reports_submit_interval_seconds=0.05)
    app = create_app(s, engine=engine)
    with TestClient(app):
        worker: ReportSubmitterWorker = app.state.report_submitter
        deadline = time.monotonic() + 30
        while report(engine, rid).state != "finished" and time.monotonic() < deadline:
            time.sleep(0.05)
        passes = worker.passes
        time.sleep(0.3)  # later passes find nothing to do and send nothing
        assert worker.passes > passes
    r = report(engine, rid)
    assert r.state == "finished" and r.ncmec_report_id is not None
    [at] = ncmec.finished()
    assert str(at.id) == r.ncmec_report_id and len(at.files) == 1
    assert len(ncmec.reports) == 1 and ncmec.seen["/ispws/submit"] == 1 and ncmec.seen["/ispws/upload"] == 1


def test_worker_is_off_by_default_and_survives_missing_credentials(engine: Engine, banks: BankService) -> None:
    app = create_app(engine.settings, engine=engine)
    assert app.state.report_submitter.interval == 0
    rid = approved(engine, banks)
    w = ReportSubmitterWorker(engine.db, engine.settings.with_(reports_submit_interval_seconds=0.02))
    w.start()  # no SAFEGUARD_NCMEC_USERNAME: each pass fails, is logged once, and the thread goes on
    time.sleep(0.2)
    assert w._thread is not None and w._thread.is_alive()
    w.stop()
    assert not w._thread.is_alive() and report(engine, rid).state == "approved"


def test_two_submitters_at_once_send_a_report_once(engine: Engine, banks: BankService, ncmec: FakeNcmec) -> None:
    rid = approved(engine, banks)
    s = ncmec_settings(engine, ncmec)
    ncmec.faults.append(Fault("/ispws/submit", "hold"))  # the first submitter waits inside POST /submit
    first: list[RunResult] = []
    t = threading.Thread(target=lambda: first.append(submitter(engine, s).run_once()))
    t.start()
    try:
        assert ncmec.held.wait(20), "the first submitter never reached /submit"
        second = submitter(engine, s).run_once()  # another holder (its own lock file or connection)
        assert second.busy == [rid] and second.finished == []
        assert ncmec.seen["/ispws/submit"] == 1
    finally:
        ncmec.release.set()
        t.join(30)
    assert first[0].finished == [rid]
    assert submitter(engine, s).run_once().finished == []  # the lock is free again; nothing left to do
    assert len(ncmec.reports) == 1 and len(ncmec.finished()) == 1 and ncmec.seen["/ispws/submit"] == 1


def test_a_report_lock_is_one_holder_at_a_time(engine: Engine) -> None:
    a, b = ReportLocks(engine.db, engine.settings), ReportLocks(engine.db, engine.settings)
    with a.hold(7) as got_a:
        assert got_a
        with b.hold(7) as got_b, b.hold(8) as other:
            assert not got_b and other
    with b.hold(7) as again:
        assert again


def test_worker_tick_uses_the_client_factory(engine: Engine, banks: BankService, ncmec: FakeNcmec) -> None:
    rid = approved(engine, banks)
    s = ncmec_settings(engine, ncmec)
    w = ReportSubmitterWorker(engine.db, s, client=partial(NcmecClient.from_settings, backoff=0.01))
    assert w.tick().finished == [rid] and w.passes == 1
