"""NCA referrals in a transparency report (counted from ``report.nca_packaged`` events, timed from the case's
opening), and reports scoped to a territory and/or a tenant: exact figures, verify honouring the scope and
failing on a tampered figure or a changed scope, the API and the CLI, bad scopes refused with a code."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from safeguard.cases import CaseService
from safeguard.keys import KeyService
from safeguard.reports import ReportService
from safeguard.reports.transports import NcaTransport
from safeguard.transparency import Scope, build, parse_period, render
from safeguard.transparency.report import verify
from tests.helpers.api import auth
from tests.helpers.cases import MOD
from tests.helpers.reports import LEAD2, REPORTER
from tests.media_factory import image_bytes
from tests.transparency.conftest import World, cli


def _report(world: World, scope: Scope | None = None, min_count: int = 10) -> dict[str, Any]:
    with world.engine.db.read() as s:
        return build(s, parse_period(world.today, world.today), min_count, scope)


def _verify(world: World, rep: dict[str, Any]) -> list[str]:
    with world.engine.db.read() as s:
        return verify(s, json.loads(json.dumps(rep))).differences


def _scan(world: World, key: str, seed: int, user: str, territory: str | None) -> dict[str, Any]:
    data = {"user_id": user, "content_id": f"s-{seed}-{user}"} | ({"territory": territory} if territory else {})
    r = world.client.post(
        "/v1/scan", headers=auth(key), files={"file": ("a.png", image_bytes(seed), "image/png")}, data=data
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(world, *args, **REPORTER)


def test_nca_referrals_are_counted_from_the_package_events(world: World, tmp_path: Path) -> None:
    before = _report(world)["figures"]["law_enforcement_reports"]["nca_referrals"]
    assert before == {
        "packages_made": 0,
        "referred": 0,
        "detection_to_referral": {"n": 0, "median_seconds": None, "p90_seconds": None},
        "detection_to_referral_histogram": [0, 0, 0, 0, 0, 0],
    }
    # the user report's confirmed case has a draft: approved, then packaged by the nca transport, then
    # exported again by hand (a second package of the same report: two packages, one report referred)
    settings = world.engine.settings.with_(**REPORTER)
    rs = ReportService(world.engine.db, settings)
    draft = next(r for r in rs.list_reports(LEAD2)[0] if r.state == "draft")
    rs.approve(LEAD2, draft.id)
    assert NcaTransport(world.engine.db, settings).send(draft.id).finished == [draft.id]
    assert (Path(settings.data_dir) / "nca-outbox" / f"report-{draft.id}.zip").is_file()
    got = _cli(world, "reports", "export", str(draft.id), "--format", "nca", "--out", str(tmp_path / "p.zip"))
    assert got.returncode == 0, got.stderr
    steps = [e for e in rs.steps(LEAD2, draft.id) if e["type"] == "report.nca_packaged"]
    assert [e["payload"]["via"] for e in steps] == ["nca-outbox", "export"]
    assert steps[1]["payload"]["sha256"] == hashlib.sha256((tmp_path / "p.zip").read_bytes()).hexdigest()

    rep = _report(world)
    nca = rep["figures"]["law_enforcement_reports"]["nca_referrals"]
    assert (nca["packages_made"], nca["referred"]) == (2, 1)
    span = (world.finished - world.started).total_seconds() + 60
    assert nca["detection_to_referral"]["n"] == 1
    assert 0 < nca["detection_to_referral"]["median_seconds"] == nca["detection_to_referral"]["p90_seconds"] <= span
    assert sum(nca["detection_to_referral_histogram"]) == 1
    assert "/figures/law_enforcement_reports/nca_referrals/referred" in rep["suppressed"]
    assert "nca_referrals_handed_over" in rep["not_available"]
    # the published forms carry them
    html = render(rep, "html")
    assert "Referrals to the UK National Crime Agency" in html and "Detection to NCA referral" in html
    csv = render(_report(world, min_count=1), "csv").splitlines()
    assert any(r.endswith(",2,/figures/law_enforcement_reports/nca_referrals/packages_made") for r in csv), csv
    assert any(r.endswith(",1,/figures/law_enforcement_reports/nca_referrals/referred") for r in csv)
    # verify re-derives them and names a tampered one
    assert _verify(world, rep) == []
    # a report made before scopes and NCA referrals (format /1 as first published) still verifies
    older = json.loads(json.dumps(rep))
    for k in ("territory", "tenant"):
        del older["inputs"][k]
    del older["scope"], older["figures"]["law_enforcement_reports"]["nca_referrals"]
    older["suppressed"] = [p for p in older["suppressed"] if "/nca_referrals/" not in p]
    assert _verify(world, older) == []
    older["figures"]["verdicts"]["block"] += 1
    assert len(_verify(world, older)) == 1
    rep["figures"]["law_enforcement_reports"]["nca_referrals"]["referred"] = 3
    assert _verify(world, rep) == [
        "/figures/law_enforcement_reports/nca_referrals/referred: the report says 3; the log gives 1"
    ]


def test_a_report_scoped_to_a_territory_or_a_tenant(world: World, tmp_path: Path) -> None:
    acme = KeyService(world.engine.db).create("platform", "acme", actor="t", tenant="acme")["key"]
    blocked = _scan(world, acme, 2, "u-de", "DE")  # the csam bank's entry: blocked, a case opened
    assert blocked["verdict"] == "block"
    assert _scan(world, acme, 30, "u-fr", "FR")["verdict"] == "allow"
    assert _scan(world, world.keys["platform"], 31, "u-de2", "DE")["verdict"] == "allow"
    cs = CaseService(world.engine.db, world.engine.settings)
    cs.claim(MOD, blocked["case_id"])
    cs.decide(MOD, blocked["case_id"], outcome="confirmed", category="A1")

    whole = _report(world)
    assert whole["inputs"]["territory"] is None and whole["inputs"]["tenant"] is None
    assert whole["scope"].startswith("the whole instance")
    de = _report(world, Scope(territory="DE"))
    f = de["figures"]
    assert de["inputs"]["territory"] == "DE" and "territory DE" in de["scope"]
    assert f["content_scanned"]["decisions_total"] == 2
    assert f["content_scanned"]["decisions_by_kind"]["image"] == 2
    assert f["verdicts"] == {"allow": 1, "block": 1, "review": 0}
    # the world's confirmed case banked the same image in the moderator-confirmed bank: it matches there too
    assert f["matches"]["by_bank"]["csam"] == 1 and set(f["matches"]["by_bank"]) <= {"csam", "moderator-confirmed"}
    assert f["cases"]["opened_by_queue"] == {"csam": 1, "grooming": 0, "streams": 0, "user_reports": 0}
    assert f["cases"]["decided_by_outcome"] == {"confirmed": 1, "not_violating": 0}
    assert f["list_quality"]["csam"] == {"reviewed": 1, "not_violating": 0, "share_not_violating": 0.0}
    assert f["law_enforcement_reports"]["drafted"] == 1 and f["law_enforcement_reports"]["submitted"] == 0
    assert f["grooming_interventions"] == {"safety_messages": 0, "contact_restrictions": 0, "cases_opened": 0}
    assert f["user_reports"]["received"] == 0 and f["time_to_action"]["n"] == 1
    # no territory on streams or chat messages: not given, and said so
    assert f["content_scanned"]["chat_messages_received"] is None
    assert f["content_scanned"]["stream_frames_sampled"] is None and f["live_streams"]["watched"] is None
    assert f["live_streams"]["terminated"] == 0
    assert {"chat_messages_received", "stream_frames_and_streams_watched"} <= set(de["not_available"])

    acme_rep = _report(world, Scope(tenant="acme"))
    g = acme_rep["figures"]
    assert g["content_scanned"]["decisions_total"] == 2 and g["verdicts"]["allow"] == 1
    assert g["live_streams"]["watched"] == 0  # streams have a tenant: counted (the world's stream is default's)
    assert _report(world, Scope(tenant="default"))["figures"]["live_streams"]["watched"] == 1
    both = _report(world, Scope(territory="DE", tenant="acme"))["figures"]
    assert both["content_scanned"]["decisions_total"] == 1 and both["verdicts"]["block"] == 1
    assert _report(world, Scope(territory="IT"))["figures"]["content_scanned"]["decisions_total"] == 0
    # the tenants partition the whole report's decisions
    default_total = _report(world, Scope(tenant="default"))["figures"]["content_scanned"]["decisions_total"]
    assert whole["figures"]["content_scanned"]["decisions_total"] == default_total + 2

    # verify honours the scope: untouched passes; a tampered figure or another scope fails
    for rep in (de, acme_rep):
        assert _verify(world, rep) == []
    tampered = json.loads(json.dumps(de))
    tampered["figures"]["verdicts"]["block"] = 2
    assert _verify(world, tampered) == ["/figures/verdicts/block: the report says 2; the log gives 1"]
    rescoped = json.loads(json.dumps(de))
    rescoped["inputs"]["territory"] = "FR"
    diffs = _verify(world, rescoped)
    assert "/figures/content_scanned/decisions_total: the report says 2; the log gives 1" in diffs
    assert any(d.startswith("/scope: the report says") for d in diffs)
    # the published forms state the scope
    assert "Scope: decisions on users in territory DE" in render(de, "html")
    assert "Member State / territory of the recipients,,,DE,/inputs/territory" in render(de, "csv")

    # the API and the CLI
    c, auditor = world.client, world.keys["auditor"]
    r = c.get(
        f"/v1/transparency/report?from={world.today}&to={world.today}&territory=DE&tenant=acme", headers=auth(auditor)
    )
    assert r.status_code == 200, r.text
    assert r.json()["figures"]["content_scanned"]["decisions_total"] == 1
    r = c.get(
        f"/v1/transparency/report?from={world.today}&to={world.today}&territory=DE&format=csv", headers=auth(auditor)
    )
    assert r.status_code == 200 and '-DE.csv"' in r.headers["content-disposition"]
    assert "Member State / territory of the recipients,,,DE," in r.text
    for bad, code in (
        ("territory=XX", "invalid_territory"),
        ("territory=de", "invalid_territory"),
        ("tenant=A%20B", "invalid_tenant"),
    ):
        r = c.get(f"/v1/transparency/report?from={world.today}&to={world.today}&{bad}", headers=auth(auditor))
        assert r.status_code == 422 and r.json()["error"]["code"] == code, (bad, r.text)
    out = tmp_path / "de.json"
    got = _cli(
        world,
        "transparency",
        "report",
        "--from",
        world.today,
        "--to",
        world.today,
        "--territory",
        "DE",
        "--out",
        str(out),
    )
    assert got.returncode == 0, got.stderr
    assert json.loads(out.read_text())["inputs"]["territory"] == "DE"
    ok = _cli(world, "transparency", "verify", str(out))
    assert ok.returncode == 0 and ok.stdout.startswith("ok: "), ok.stdout + ok.stderr
    bad = _cli(world, "transparency", "report", "--from", world.today, "--to", world.today, "--tenant", "Not A Tenant")
    assert bad.returncode == 2 and "invalid_tenant" in bad.stderr
