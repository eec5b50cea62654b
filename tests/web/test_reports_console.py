"""The console's report pages over HTTP (in-process): the list, a page per report with the exact XML, its
validation and what is missing, approval by a second lead (CSRF-checked; the confirming lead is refused
unless SAFEGUARD_REPORTS_SELF_APPROVE), retraction once; roles."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from safeguard.accounts import Who
from safeguard.api.app import create_app
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.reports import ReportService
from tests.web.conftest import banked_case, console_login, csrf_of, person

REPORTER = {
    "reporter_organisation": "Example Platform",
    "reporter_contact": "Ann Lee",
    "reporter_email": "safety@example.org",
}
AUDITOR = Who("t", "auditor", "t")


def confirm_in_console(client: TestClient, csrf: str, case_id: int) -> None:
    r = client.post(f"/console/cases/{case_id}/claim", data={"csrf": csrf})
    assert r.status_code == 200, r.text[:300]
    r = client.post(
        f"/console/cases/{case_id}/decision",
        data={"csrf": csrf, "outcome": "confirmed", "category": "A1", "notes": "bank match"},
    )
    assert r.status_code == 200 and "case.decided" in r.text, r.text[:500]


def only_report(engine: Engine) -> int:
    rows, _ = ReportService(engine.db, engine.settings).list_reports(AUDITOR)
    assert len(rows) == 1
    return rows[0].id


@pytest.fixture
def app_with(csettings: Settings, cengine: Engine) -> Iterator[tuple[TestClient, TestClient, Engine]]:
    """Two browsers (cookie jars) on one app: the lead who confirms, and a second lead."""
    app = create_app(csettings.with_(**REPORTER), engine=cengine)
    with TestClient(app) as a, TestClient(app) as b:
        yield a, b, cengine


def test_second_lead_approves_in_the_console_and_the_confirming_lead_cannot(
    app_with: tuple[TestClient, TestClient, Engine],
) -> None:
    lea_client, leo_client, engine = app_with
    case_id, _ = banked_case(engine)
    lea, leo = person(engine, "lea", "lead"), person(engine, "leo", "lead")
    lea_csrf = console_login(lea_client, lea)
    confirm_in_console(lea_client, lea_csrf, case_id)
    rid = only_report(engine)

    listed = lea_client.get("/console/reports?state=draft")
    assert listed.status_code == 200 and f'href="/console/reports/{rid}"' in listed.text
    page = lea_client.get(f"/console/reports/{rid}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Valid against NCMEC's CyberTipline schema." in text and "Nothing missing." in text
    xml = ReportService(engine.db, engine.settings.with_(**REPORTER)).preview(AUDITOR, rid)["xml"]
    assert xml in text  # exactly the document POST /submit sends
    assert "<espIdentifier>u-1</espIdentifier>" in text and "report.drafted" in text
    assert "You confirmed this case: a second lead approves its report." in text

    refused = lea_client.post(f"/console/reports/{rid}/approve", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 403 and "second_approver_required" in refused.text
    assert "draft" in refused.text  # the page again, the report unchanged

    leo_csrf = console_login(leo_client, leo)
    no_token = leo_client.post(f"/console/reports/{rid}/approve", data={})
    assert no_token.status_code == 403 and "csrf_failed" in no_token.text
    wrong = leo_client.post(f"/console/reports/{rid}/approve", data={"csrf": lea_csrf})  # another session's
    assert wrong.status_code == 403 and "csrf_failed" in wrong.text
    assert ReportService(engine.db, engine.settings).get(AUDITOR, rid).state == "draft"

    ok = leo_client.post(f"/console/reports/{rid}/approve", data={"csrf": leo_csrf})
    assert ok.status_code == 200 and ok.url.path == f"/console/reports/{rid}"
    got = ReportService(engine.db, engine.settings).get(AUDITOR, rid)
    assert got.state == "approved" and got.approved_by == "user:leo"
    assert "report.approved" in ok.text and "approve-form" not in ok.text  # no second approval offered

    gone = leo_client.post(f"/console/reports/{rid}/retract", data={"csrf": leo_csrf, "reason": "duplicate"})
    assert gone.status_code == 200 and "report.retracted" in gone.text
    again = leo_client.post(f"/console/reports/{rid}/retract", data={"csrf": leo_csrf})
    assert again.status_code == 409 and "report_state" in again.text


def test_roles_missing_settings_and_bad_ids(csettings: Settings, cengine: Engine) -> None:
    with TestClient(create_app(csettings, engine=cengine)) as c:  # no reporter settings
        case_id, _ = banked_case(cengine)
        lea = person(cengine, "lea", "lead")
        csrf = console_login(c, lea)
        confirm_in_console(c, csrf, case_id)
        rid = only_report(cengine)
        text = html.unescape(c.get(f"/console/reports/{rid}").text)
        assert "Missing before it can be sent:" in text
        for name in ("SAFEGUARD_REPORTER_ORGANISATION", "SAFEGUARD_REPORTER_CONTACT", "SAFEGUARD_REPORTER_EMAIL"):
            assert f"{name} is not set" in text
        assert c.get("/console/reports/abc").status_code == 422
        assert c.get("/console/reports/999").status_code == 404
        assert c.get("/console/reports?state=bogus").status_code == 422
        c.post("/console/logout", data={"csrf": csrf})
        mia = person(cengine, "mia", "moderator")
        mcsrf = console_login(c, mia)
        assert c.get(f"/console/reports/{rid}").status_code == 200  # a moderator reads
        assert "approve-form" not in c.get(f"/console/reports/{rid}").text
        denied = c.post(f"/console/reports/{rid}/approve", data={"csrf": mcsrf})
        assert denied.status_code == 403 and "wrong_role" in denied.text
    with TestClient(create_app(csettings, engine=cengine)) as anon:
        r = anon.get(f"/console/reports/{rid}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("/console/login")


def test_self_approval_setting_lets_a_one_person_team_approve(csettings: Settings, cengine: Engine) -> None:
    app = create_app(csettings.with_(**REPORTER, reports_self_approve=True), engine=cengine)
    with TestClient(app) as c:
        case_id, _ = banked_case(cengine)
        lea = person(cengine, "lea", "lead")
        csrf = console_login(c, lea)
        confirm_in_console(c, csrf, case_id)
        rid = only_report(cengine)
        page = c.get(f"/console/reports/{rid}").text
        assert "a second lead approves" not in page
        ok = c.post(f"/console/reports/{rid}/approve", data={"csrf": csrf})
        assert ok.status_code == 200
        assert re.search(r'class="state approved">approved<', ok.text)


def test_report_pages_carry_the_console_headers(csettings: Settings, cengine: Engine) -> None:
    with TestClient(create_app(csettings, engine=cengine)) as c:
        lea = person(cengine, "lea", "lead")
        console_login(c, lea)
        r = c.get("/console/reports")
        assert r.status_code == 200 and "No reports." in r.text
        assert "script-src 'self'" in r.headers["content-security-policy"] and r.headers["cache-control"] == "no-store"
