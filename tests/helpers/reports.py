"""Law-enforcement reports for tests: reporter settings, a confirmed case, the local NCMEC submitter."""

from __future__ import annotations

import os

from safeguard import secrets
from safeguard.accounts import Who
from safeguard.banks import BankService
from safeguard.cases import CaseService
from safeguard.config import SETTINGS, Settings
from safeguard.engine import Engine
from safeguard.reports import ReportService
from safeguard.reports.ncmec.client import NcmecClient
from safeguard.reports.submitter import Submitter
from safeguard.store.models import Report
from tests.helpers.cases import MOD, banked_case
from tests.reports.ncmec_server import PASSWORD, USER, FakeNcmec


def env_of(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGUARD_")}
    for st in SETTINGS:
        v = getattr(s, st.name)
        env[st.env] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    env["SAFEGUARD_DATABASE_URL"] = s.resolved_database_url
    return env


def ncmec_settings(engine: Engine, fake: FakeNcmec, password: str = PASSWORD) -> Settings:
    s = engine.settings.with_(**REPORTER, egress_allow="127.0.0.1", ncmec_url=fake.url, ncmec_username=USER)
    return s.with_(ncmec_password=secrets.seal(s, password, purpose="ncmec"))


def submitter(engine: Engine, s: Settings, **kw: object) -> Submitter:
    return Submitter(engine.db, s, NcmecClient.from_settings(s, backoff=0.01, **kw))  # type: ignore[arg-type]


def approved(engine: Engine, banks: BankService) -> int:
    confirmed_case(engine, banks)
    rs = ReportService(engine.db, engine.settings)
    rid = rs.list_reports(LEAD2)[0][0].id
    rs.approve(LEAD2, rid)
    return rid


def report(engine: Engine, rid: int) -> Report:
    with engine.db.read() as s:
        r = s.get(Report, rid)
        assert r is not None
        s.expunge(r)
        return r


LEAD2 = Who("user:leo", "lead", "leo", "user", 5)


def confirmed_case(engine: Engine, banks: BankService, who: Who = MOD, **settings: object) -> int:
    case_id, _ = banked_case(engine, banks)
    cs = CaseService(engine.db, engine.settings.with_(**settings))
    cs.claim(who, case_id)
    cs.decide(who, case_id, outcome="confirmed", category="A1")
    return case_id


REPORTER = {
    "reporter_organisation": "Example Platform",
    "reporter_contact": "Ann Lee",
    "reporter_email": "safety@example.org",
    "reporter_phone": "+1 555 0100",
}
