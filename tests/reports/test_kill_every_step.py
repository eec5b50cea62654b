"""Exactly once: a submitter process killed at every step (NCMEC did the work, the answer never arrived),
then restarted, yields one finished NCMEC report with every file exactly once. SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeguard.banks import BankService
from safeguard.engine import Engine
from safeguard.reports import ReportService
from tests.helpers.cases import banked_case
from tests.helpers.reports import LEAD2, MOD, env_of, ncmec_settings
from tests.reports.ncmec_server import FakeNcmec, Fault

STEPS = [("/ispws/submit", 0), ("/ispws/upload", 0), ("/ispws/upload", 1), ("/ispws/fileinfo", 1), ("/ispws/finish", 0)]


@pytest.fixture
def ncmec() -> Iterator[FakeNcmec]:
    fake = FakeNcmec().start()
    yield fake
    fake.stop()


def submit(env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "safeguard.cli", "reports", "submit"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[2])


def two_file_report(engine: Engine, banks: BankService) -> int:
    """One user, two uploads in one case: one report bundling both files."""
    from safeguard.cases import CaseService

    case_id, _ = banked_case(engine, banks, seed=2, user="u-1")
    case2, _ = banked_case(engine, banks, seed=3, user="u-1")
    assert case2 == case_id  # the same user's second match joins the open case
    cs = CaseService(engine.db, engine.settings)
    cs.claim(MOD, case_id)
    cs.decide(MOD, case_id, outcome="confirmed", category="A1")
    rs = ReportService(engine.db, engine.settings)
    [r], _ = rs.list_reports(LEAD2)
    assert len(r.item_ids) == 2
    rs.approve(LEAD2, r.id)
    return r.id


@pytest.mark.timeout(240)
@pytest.mark.parametrize("path,after", STEPS)
def test_killed_at_a_step_then_restarted_sends_one_report_with_every_file_once(
    engine: Engine, banks: BankService, ncmec: FakeNcmec, path: str, after: int
) -> None:
    rid = two_file_report(engine, banks)
    env = env_of(ncmec_settings(engine, ncmec))
    ncmec.faults.append(Fault(path, "hold", 1, after=after))
    p = submit(env)
    try:
        assert ncmec.held.wait(60), p.communicate(timeout=5)
    finally:
        p.kill()
        p.wait(10)
    ncmec.release.set()
    ncmec.faults.clear()
    again = submit(env)
    out, errs = again.communicate(timeout=120)
    assert again.returncode == 0, errs.decode()[-2000:]
    finished = ncmec.finished()
    assert len(finished) == 1, (out, [(r.id, r.finished, r.retracted, len(r.files)) for r in ncmec.reports.values()])
    files = list(finished[0].files.values())
    assert len(files) == 2 and len({f["md5"] for f in files}) == 2  # every file, once
    assert all(f["details"] is not None for f in files)
    unfinished = [r for r in ncmec.reports.values() if not r.finished]
    assert all(r.retracted or not r.files for r in unfinished)  # a redo retracted its predecessor, or it was empty
    rep = ReportService(engine.db, engine.settings).get(LEAD2, rid)
    assert rep.state == "finished" and rep.ncmec_report_id == str(finished[0].id)
