"""Transparency reports from real records: scans through the API, cases decided through the service, a report
submitted to a loopback NCMEC, a grooming decision, a watched stream terminated, a user report. Every
figure is checked exactly; verify passes on the untouched JSON and fails, naming the figure, on a tampered
one; the CLI runs as a subprocess; bad input gets clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from safeguard.cases import CaseService
from safeguard.content import Content, ContentKind
from safeguard.errors import InvalidInput
from safeguard.store.models import Case, Event
from safeguard.transparency import build, parse_period, render
from safeguard.transparency.report import verify
from tests.helpers.api import auth
from tests.helpers.cases import LEAD
from tests.transparency.conftest import World, cli


def _report(world: World, **kw: Any) -> dict[str, Any]:
    with world.engine.db.read() as s:
        return build(s, parse_period(world.today, world.today), kw.get("min_count", 10))


def test_figures_are_exact(world: World) -> None:
    rep = _report(world)
    f = rep["figures"]
    scanned = f["content_scanned"]
    # 3 allowed images + 2 matched images; one hash-only scan; one grooming message decision; stream frames
    # that reached a decision (the monitor decides once per new evidence)
    assert scanned["decisions_by_kind"]["image"] == 5
    assert scanned["decisions_by_kind"]["hashes"] == 1
    assert scanned["decisions_by_kind"]["message"] == 1
    assert scanned["decisions_by_kind"]["video"] == 0
    stream_decisions = scanned["decisions_by_kind"]["stream"]
    assert stream_decisions >= 1
    assert scanned["decisions_total"] == 7 + stream_decisions
    assert scanned["stream_frames_sampled"] >= 2  # sampled (about 1 per second) until the match at 2 s
    assert scanned["chat_messages_received"] == 0  # no message went through the conversations API
    assert f["verdicts"] == {"allow": 4, "block": 2 + stream_decisions, "review": 1}
    assert f["matches"]["by_bank"] == {"csam": 1, "partner": 1 + stream_decisions}
    assert f["matches"]["by_signal_type"] == {"pdq": 2 + stream_decisions}  # frames match as PDQ entries
    assert f["matches"]["by_category"] == {"A1": 1, "A2": stream_decisions, "B1": 1}
    assert f["matches"]["total"] == 2 + stream_decisions
    assert f["cases"]["opened_by_queue"] == {"csam": 2, "grooming": 1, "streams": 1, "user_reports": 1}
    assert f["cases"]["decided_by_outcome"] == {"confirmed": 2, "not_violating": 1}
    assert f["cases"]["decided_by_override"] == 0
    # list quality: the csam bank's match was confirmed, the partner bank's one was not
    assert f["list_quality"] == {
        "csam": {"reviewed": 1, "not_violating": 0, "share_not_violating": 0.0},
        "partner": {"reviewed": 1, "not_violating": 1, "share_not_violating": 1.0},
    }
    le = f["law_enforcement_reports"]
    assert (le["drafted"], le["submitted"], le["submitted_by_transport"]) == (2, 1, {"ncmec": 1})
    span = (world.finished - world.started).total_seconds()
    assert le["detection_to_submission"]["n"] == 1
    assert 0 < le["detection_to_submission"]["median_seconds"] <= span
    assert f["grooming_interventions"] == {"safety_messages": 1, "contact_restrictions": 1, "cases_opened": 1}
    streams = f["live_streams"]
    assert (streams["watched"], streams["terminated"]) == (1, 1)
    assert 1.0 <= streams["time_to_terminate"]["median_seconds"] <= span  # paced at 1x: the match is at 2 s
    assert f["user_reports"] == {"received": 1, "by_reason": {"grooming": 1}, "actioned": 1}
    tta = f["time_to_action"]
    assert tta["n"] == 3 and 0 < tta["median_seconds"] <= tta["p90_seconds"] <= span
    assert sum(f["time_to_action_histogram"]) == 3
    by_queue = {q: x["n"] for q, x in f["time_to_action_by_queue"].items()}
    assert by_queue == {"csam": 2, "grooming": 0, "streams": 0, "user_reports": 1}
    assert f["time_to_action_by_queue"]["grooming"]["median_seconds"] is None
    over = f["over_time"]
    assert over["bucket_days"] == 1 and over["buckets"] == [world.today]
    assert over["scanned"] == [scanned["decisions_total"]] and over["cases_decided"] == [3]
    # the range: every event of today, first to last
    with world.engine.db.read() as s:
        n, lo, hi = s.execute(select(func.count(), func.min(Event.seq), func.max(Event.seq))).one()
    assert rep["event_range"]["first_seq"] == lo == 1 and rep["event_range"]["last_seq"] == hi
    assert rep["event_range"]["events"] == n
    # small counts are marked; zero is not
    assert "/figures/cases/decided_by_outcome/confirmed" in rep["suppressed"]
    assert "/figures/content_scanned/decisions_by_kind/video" not in rep["suppressed"]
    assert "/figures/time_to_action/median_seconds" in rep["suppressed"]


def test_an_empty_period_has_zero_figures_and_no_range(world: World) -> None:
    with world.engine.db.read() as s:
        rep = build(s, parse_period("2020-01-01", "2020-01-31"), 10)
    assert rep["event_range"]["first_seq"] is None and rep["event_range"]["events"] == 0
    assert rep["figures"]["content_scanned"]["decisions_total"] == 0
    assert (
        rep["figures"]["over_time"]["buckets"][0] == "2020-01-01" and len(rep["figures"]["over_time"]["buckets"]) == 31
    )
    assert rep["suppressed"] == []


def test_verify_passes_untouched_and_fails_on_a_tampered_figure(world: World) -> None:
    rep = json.loads(render(_report(world), "json"))
    with world.engine.db.read() as s:
        ok = verify(s, rep)
    assert ok.ok, ok.differences
    assert ok.figures_checked > 40 and ok.events_checked == rep["event_range"]["events"]
    tampered = json.loads(json.dumps(rep))
    tampered["figures"]["verdicts"]["block"] += 1
    with world.engine.db.read() as s:
        bad = verify(s, tampered)
    assert not bad.ok
    assert bad.differences == [
        f"/figures/verdicts/block: the report says {tampered['figures']['verdicts']['block']}; "
        f"the log gives {rep['figures']['verdicts']['block']}"
    ]
    # a forged range end, a figure dropped from the suppressed list, a share changed: each is named
    tampered = json.loads(json.dumps(rep))
    tampered["event_range"]["last_hash"] = "f" * 64
    tampered["suppressed"].remove("/figures/verdicts/block")
    tampered["figures"]["list_quality"]["partner"]["share_not_violating"] = 0.5
    with world.engine.db.read() as s:
        bad = verify(s, tampered)
    assert any(d.startswith("event range: the chain ends at seq") for d in bad.differences), bad.differences
    assert any(d.startswith("/event_range/last_hash: the report says 'ffff") for d in bad.differences)
    assert any(d.startswith("/suppressed: the report lists") for d in bad.differences)
    assert (
        "/figures/list_quality/partner/share_not_violating: the report says 0.5; the log gives 1.0" in bad.differences
    )
    tampered = json.loads(json.dumps(rep))
    del tampered["inputs"]["from"]
    with world.engine.db.read() as s, pytest.raises(InvalidInput) as e:
        verify(s, tampered)
    assert e.value.code == "invalid_report"


def test_verify_notices_an_event_appended_in_the_period_and_a_rewritten_one(world: World) -> None:
    rep = json.loads(render(_report(world), "json"))
    with world.engine.db.write() as s:  # a later decision inside the period: the range and figures moved
        world.engine.decide_in(s, Content(kind=ContentKind.IMAGE, content_id="late"), [])
    with world.engine.db.read() as s:
        got = verify(s, rep)
    assert any(d.startswith("/event_range/last_seq") for d in got.differences)
    assert any(d.startswith("/figures/verdicts/allow") for d in got.differences)
    rep = json.loads(render(_report(world), "json"))
    with world.engine.db.write() as s:  # a database writer edits an event in the range
        ev = s.get(Event, 3)
        assert ev is not None
        ev.actor = "someone-else"
    with world.engine.db.read() as s:
        got = verify(s, rep)
    assert "event seq 3: the chain over the report's range is broken here" in got.differences


def test_html_and_csv_show_small_counts_as_fewer_than_n(world: World) -> None:
    rep = _report(world)
    page = render(rep, "html")
    assert (
        "fewer than 10" in page
        and "<svg" in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "<script" not in page and "https://" not in page
    rows = render(rep, "csv").splitlines()
    assert rows[0] == "template_section,template_field,category,breakdown,value,safeguard_figure"
    block = next(r for r in rows if r.endswith("/figures/verdicts/block"))
    assert ",fewer than 10," in block
    # with a threshold of 1 nothing is suppressed: the exact figures show
    rep1 = _report(world, min_count=1)
    assert rep1["suppressed"] == []
    block1 = next(r for r in render(rep1, "csv").splitlines() if r.endswith("/figures/verdicts/block"))
    assert f",{rep1['figures']['verdicts']['block']}," in block1
    assert "fewer than" not in render(rep1, "html")


def test_api_is_for_auditors_and_admins(world: World) -> None:
    c, keys = world.client, world.keys
    q = f"/v1/transparency/report?from={world.today}&to={world.today}"
    for role in ("auditor", "admin"):
        r = c.get(q, headers=auth(keys[role]))
        assert r.status_code == 200, r.text
        assert r.json()["figures"]["cases"]["decided_total"] == 3
    for role in ("platform", "moderator"):
        r = c.get(q, headers=auth(keys[role]))
        assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_role"
    assert c.get(q).status_code == 401
    html = c.get(q + "&format=html", headers=auth(keys["auditor"]))
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    csv = c.get(q + "&format=csv", headers=auth(keys["auditor"]))
    assert csv.status_code == 200 and csv.text.startswith("template_section,")
    for bad, code in (
        (f"?from={world.today}&to=2020-01-01", "invalid_period"),
        (f"?from=yesterday&to={world.today}", "invalid_date"),
        (f"?from={world.today}&to={world.today}&format=pdf", "invalid_format"),
        (f"?from={world.today}", "invalid_request"),
    ):
        r = c.get("/v1/transparency/report" + bad, headers=auth(keys["auditor"]))
        assert r.status_code == 422 and r.json()["error"]["code"] == code, (bad, r.text)


def test_cli_report_and_verify_as_a_subprocess(world: World, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    day = ("--from", world.today, "--to", world.today)
    got = cli(world, "transparency", "report", *day, "--format", "json", "--out", str(out))
    assert got.returncode == 0, got.stderr
    rep = json.loads(out.read_text())
    assert rep["figures"]["cases"]["decided_total"] == 3
    ok = cli(world, "transparency", "verify", str(out))
    assert ok.returncode == 0 and ok.stdout.startswith("ok: "), ok.stdout + ok.stderr
    rep["figures"]["law_enforcement_reports"]["submitted"] = 7
    out.write_text(json.dumps(rep))
    bad = cli(world, "transparency", "verify", str(out))
    assert bad.returncode == 1
    assert "/figures/law_enforcement_reports/submitted: the report says 7; the log gives 1" in bad.stderr
    html = cli(world, "transparency", "report", *day, "--format", "html")
    assert html.returncode == 0 and html.stdout.startswith("<!DOCTYPE html>")
    for args, code in (
        (("report", "--from", world.today, "--to", "2020-01-01"), "invalid_period"),
        (("report", "--from", "2026-13-01", "--to", world.today), "invalid_date"),
        (("report", "--from", world.today, "--to", world.today, "--format", "pdf"), "invalid_format"),
        (("verify", str(tmp_path / "missing.json")), "invalid_report"),
    ):
        got = cli(world, "transparency", *args)
        assert got.returncode == 2 and code in got.stderr, (args, got.stderr)


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        ("2026-01-01", "9999-12-31", "invalid_date"),  # its end, the day after, is past the calendar
        ("0001-01-01T00:00:00+01:00", "2026-01-01", "invalid_date"),
        ("2026-02-30", "2026-03-01", "invalid_date"),
        ("2026-01-01", "2026-01-01T25:00", "invalid_date"),
        ("2026-01-01\x00", "2026-01-02", "invalid_date"),
        ("2026-01-01", "2026-01-01T00:00:00+14:00", "invalid_period"),  # that is 2025-12-31T10:00Z
        ("2026-01-02", "2026-01-01", "invalid_period"),
        ("2000-01-01", "2026-01-01", "invalid_period"),  # over ten years
        ("", "2026-01-01", "invalid_period"),
    ],
)
def test_bad_periods_are_refused_with_a_code(start: str, end: str, code: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_period(start, end)
    assert e.value.code == code


def test_period_parsing() -> None:
    p = parse_period("2026-01-01", "2026-01-31")
    assert p.start == datetime(2026, 1, 1, tzinfo=UTC) and p.end == datetime(2026, 2, 1, tzinfo=UTC)
    p = parse_period("2026-01-01T12:00:00+02:00", "2026-01-01T13:00:00Z")
    assert p.start == datetime(2026, 1, 1, 10, tzinfo=UTC) and p.end - p.start == timedelta(hours=3)


def test_a_lead_overturning_a_confirmation_counts_the_case_once_with_its_last_outcome(world: World) -> None:
    with world.engine.db.read() as s:
        case_id = s.execute(select(Case.id).where(Case.subject_id == "u-1")).scalar_one()
    CaseService(world.engine.db, world.engine.settings).decide(LEAD, case_id, outcome="not_violating", override=True)
    f = _report(world)["figures"]
    assert f["cases"]["decided_by_outcome"] == {"confirmed": 1, "not_violating": 2}
    assert (f["cases"]["decided_total"], f["cases"]["decided_by_override"]) == (3, 1)
    assert f["over_time"]["cases_decided"] == [3]
    assert f["list_quality"]["csam"] == {"reviewed": 1, "not_violating": 1, "share_not_violating": 1.0}
    assert f["time_to_action"]["n"] == 3


def test_the_world_waits_out_midnight_so_its_records_share_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.transparency import conftest

    clock = [datetime(2026, 12, 6, 23, 58, 30, tzinfo=UTC)]
    slept: list[float] = []

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return clock[0]

    def sleep(s: float) -> None:
        slept.append(s)
        clock[0] += timedelta(seconds=s)

    monkeypatch.setattr(conftest, "datetime", Clock)
    monkeypatch.setattr(conftest.time, "sleep", sleep)
    assert conftest._a_day_to_work_in() == "2026-12-07" and slept == [91.0]
    clock[0] = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert conftest._a_day_to_work_in() == "2026-12-07" and slept == [91.0]  # midday: no wait
