"""The console over HTTP: login failures, CSRF, expired sessions, a claim held by another (409), reveal
without the role (403 and an event), the audit CSV, the queue order setting, the quality sample."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select, update

from safeguard.banks import BankService
from safeguard.content import Content, ContentKind, Finding
from safeguard.engine import Engine
from safeguard.errors import ConfigError
from safeguard.evidence import vault_of
from safeguard.store.models import Case, Event, UserSession, utcnow
from safeguard.web.service import check_queue_order, check_share, qa_sampled
from tests.web.conftest import NEW_PASSWORD, banked_case, code, console_login, csrf_of, person


def events_of(engine: Engine, type_: str) -> list[Event]:
    with engine.db.read() as s:
        return list(s.execute(select(Event).where(Event.type == type_).order_by(Event.seq)).scalars())


def evidence_id(client: TestClient, case_id: int) -> str:
    html = client.get(f"/console/cases/{case_id}").text
    start = html.index(f"/console/cases/{case_id}/media/") + len(f"/console/cases/{case_id}/media/")
    return html[start : html.index("/", start)]


def test_pages_need_a_session_and_send_security_headers(client: TestClient) -> None:
    r = client.get("/console/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    r = client.get("/console/login")
    assert r.status_code == 200 and 'name="totp"' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text  # the only script is the package's file
    js = client.get("/console/static/console.js")
    assert js.status_code == 200 and "keydown" in js.text


def test_wrong_password_or_totp_is_refused_on_the_page(client: TestClient, cengine: Engine) -> None:
    mia = person(cengine, "mia", "moderator")
    r = client.post("/console/login", data={"name": "mia", "password": "wrong", "totp": code(mia)})
    assert r.status_code == 401 and "invalid_credentials" in r.text and "sg_session" not in r.cookies
    r = client.post("/console/login", data={"name": "mia", "password": mia.password, "totp": "000000"})
    assert r.status_code == 401 and "sg_session" not in r.cookies
    assert [e.payload.get("name") for e in events_of(cengine, "user.login_failed")][-2:] == ["mia", "mia"] or len(
        events_of(cengine, "user.login_failed")
    ) == 2


def test_one_time_password_must_be_changed_first(client: TestClient, cengine: Engine) -> None:
    mia = person(cengine, "mia", "moderator")
    r = client.post("/console/login", data={"name": "mia", "password": mia.password, "totp": code(mia)})
    assert r.url.path == "/console/password"
    r = client.get("/console/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/password"
    csrf = csrf_of(client.get("/console/password").text)
    r = client.post(
        "/console/password",
        data={"csrf": csrf, "password": mia.password, "new_password": "x" * 12, "confirm": "y" * 12},
    )
    assert r.status_code == 400 and "differ" in r.text
    r = client.post(
        "/console/password",
        data={"csrf": csrf, "password": mia.password, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert r.url.path == "/console/queue" and r.status_code == 200


def test_missing_csrf_is_403_and_nothing_changes(client: TestClient, cengine: Engine) -> None:
    case_id, _ = banked_case(cengine)
    mia = person(cengine, "mia", "moderator")
    console_login(client, mia)
    r = client.post(f"/console/cases/{case_id}/claim", data={})
    assert r.status_code == 403 and "csrf_failed" in r.text
    r = client.post(f"/console/cases/{case_id}/claim", data={"csrf": "forged"})
    assert r.status_code == 403
    assert not events_of(cengine, "case.claimed")


def test_expired_session_redirects_to_login(client: TestClient, cengine: Engine) -> None:
    mia = person(cengine, "mia", "moderator")
    console_login(client, mia)
    with cengine.db.write() as s:
        s.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = client.get("/console/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login?expired=1"
    assert "session has ended" in client.get(r.headers["location"]).text


def test_claim_held_by_another_is_a_409_page(client: TestClient, cengine: Engine) -> None:
    case_id, _ = banked_case(cengine)
    mia, max_ = person(cengine, "mia", "moderator"), person(cengine, "max", "moderator")
    with TestClient(client.app) as other:
        csrf_max = console_login(other, max_)
        r = other.post(f"/console/cases/{case_id}/claim", data={"csrf": csrf_max})
        assert r.status_code == 200 and "user:max" in r.text
    csrf = console_login(client, mia, step=1)
    r = client.post(f"/console/cases/{case_id}/claim", data={"csrf": csrf})
    assert r.status_code == 409 and "case_claimed" in r.text and f"Case #{case_id}" in r.text
    r = client.post(f"/console/cases/{case_id}/decision", data={"csrf": csrf, "outcome": "confirmed", "category": "A1"})
    assert r.status_code == 409 and "claim_required" in r.text


def test_reveal_without_the_role_is_403_and_audited(client: TestClient, cengine: Engine) -> None:
    case_id, _ = banked_case(cengine)
    aud = person(cengine, "aud", "auditor")
    csrf = console_login(client, aud)
    page = client.get(f"/console/cases/{case_id}")
    assert page.status_code == 200 and 'class="reveal"' not in page.text  # an auditor reads the case, not the media
    [ev] = vault_of(cengine).items_for_case(case_id)
    r = client.post(f"/console/cases/{case_id}/media/{ev.id}/reveal", data={"csrf": csrf, "reason": "curious"})
    assert r.status_code == 403 and "wrong_role" in r.text
    [denied] = events_of(cengine, "evidence.read_denied")
    assert denied.actor == "user:aud" and denied.payload["reason"] == "curious" and denied.payload["role"] == "auditor"
    assert not events_of(cengine, "evidence.read")
    r = client.get(f"/console/cases/{case_id}/media/{ev.id}/preview.png")
    assert r.status_code == 403


def test_preview_is_blurred_greyscale_and_reveal_needs_a_reason(client: TestClient, cengine: Engine) -> None:
    case_id, _ = banked_case(cengine)
    mia = person(cengine, "mia", "moderator")
    csrf = console_login(client, mia)
    item = evidence_id(client, case_id)
    r = client.get(f"/console/cases/{case_id}/media/{item}/preview.png")
    assert (
        r.status_code == 200 and r.headers["content-type"] == "image/png" and r.headers["cache-control"] == "no-store"
    )
    img = Image.open(io.BytesIO(r.content))
    assert img.mode == "L"  # greyscale, rendered here
    assert events_of(cengine, "evidence.previewed") and not events_of(cengine, "evidence.read")
    r = client.post(f"/console/cases/{case_id}/media/{item}/reveal", data={"csrf": csrf, "reason": " "})
    assert r.status_code == 422 and "reason_required" in r.text
    r = client.post(f"/console/cases/{case_id}/media/{item}/reveal", data={"csrf": csrf, "reason": "confirm the match"})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).mode == "RGB"
    [read] = events_of(cengine, "evidence.read")
    assert read.actor == "user:mia" and read.payload["reason"] == "confirm the match"
    assert '<strong id="revealed-today">1</strong>' in client.get("/console/me").text
    # greyscale always: even a revealed item stays greyscale
    client.post("/console/me/preferences", data={"csrf": csrf, "greyscale": "1"})
    r = client.post(f"/console/cases/{case_id}/media/{item}/reveal", data={"csrf": csrf, "reason": "again"})
    assert Image.open(io.BytesIO(r.content)).mode == "L"
    assert '<strong id="revealed-today">2</strong>' in client.get("/console/me").text


def test_decision_through_the_console_banks_the_item(client: TestClient, cengine: Engine) -> None:
    case_id, entry_id = banked_case(cengine)
    mia = person(cengine, "mia", "moderator")
    csrf = console_login(client, mia)
    r = client.post("/console/claim-next", data={"csrf": csrf})
    assert r.url.path == f"/console/cases/{case_id}"
    r = client.post(f"/console/cases/{case_id}/decision", data={"csrf": csrf, "outcome": "confirmed", "category": "A1"})
    assert r.status_code == 200 and "confirmed" in r.text and "case.decided" in r.text
    assert "confirmed by user:mia" in r.text  # the opinion on the matched entry
    assert BankService(cengine.db).describe("moderator-confirmed").entry_count == 3
    del entry_id


def test_auditor_filters_and_exports_csv(client: TestClient, cengine: Engine) -> None:
    case_id, _ = banked_case(cengine)
    mia, aud = person(cengine, "mia", "moderator"), person(cengine, "aud", "auditor")
    with TestClient(client.app) as m:
        csrf = console_login(m, mia)
        assert m.get("/console/audit").status_code == 403  # moderators do not read the audit page
        item = evidence_id(m, case_id)
        m.post(f"/console/cases/{case_id}/media/{item}/reveal", data={"csrf": csrf, "reason": "=cmd|' /C calc'!A0"})
    console_login(client, aud, step=1)
    page = client.get("/console/audit", params={"actor": "user:mia", "type": "evidence."})
    assert page.status_code == 200 and "evidence.read" in page.text and "user.created" not in page.text
    r = client.get("/console/audit.csv", params={"actor": "user:mia", "type": "evidence.read"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["seq", "created_at", "type", "actor", "subject", "payload"]
    assert [x[2] for x in rows[1:]] == ["evidence.read"] and rows[1][3] == "user:mia"
    assert f'"case_id": {case_id}' in rows[1][5]
    r = client.get("/console/audit", params={"since": "yesterday"})
    assert r.status_code == 422 and "invalid_date" in r.text


def test_queue_order_setting_and_filters(client: TestClient, cengine: Engine) -> None:
    first, _ = banked_case(cengine, seed=7)
    second, _ = banked_case(cengine, seed=8, user="u-2")
    mia = person(cengine, "mia", "moderator")
    console_login(client, mia)
    html = client.get("/console/queue").text
    assert html.index(f"#{first}<") < html.index(f"#{second}<") and "priority_age" in html
    assert f"#{first}<" not in client.get("/console/queue", params={"queue": "grooming"}).text
    assert client.get("/console/queue", params={"queue": "nope"}).status_code == 422
    con = client.app.state.console  # type: ignore[attr-defined]
    con.order = "reports"
    with cengine.db.write() as s:
        s.execute(update(Case).where(Case.id == second).values(report_count=3))
    html = client.get("/console/queue").text
    assert html.index(f"#{second}<") < html.index(f"#{first}<") and "reports" in html


def test_quality_sample_and_agreement_for_leads_only(client: TestClient, cengine: Engine) -> None:
    case_id, _ = banked_case(cengine)
    client.app.state.console.qa_share = 1.0  # type: ignore[attr-defined]
    mia, lea = person(cengine, "mia", "moderator"), person(cengine, "lea", "lead")
    with TestClient(client.app) as m:
        csrf = console_login(m, mia)
        m.post(f"/console/cases/{case_id}/claim", data={"csrf": csrf})
        m.post(f"/console/cases/{case_id}/decision", data={"csrf": csrf, "outcome": "not_violating"})
        assert m.get("/console/qa").status_code == 403  # peers do not see agreement rates
    csrf = console_login(client, lea, step=1)
    page = client.get("/console/qa")
    assert page.status_code == 200 and f"#{case_id}" in page.text
    r = client.post(f"/console/qa/{case_id}", data={"csrf": csrf, "agree": "0", "notes": "looks like A2"})
    assert r.status_code == 200 and f"#{case_id}</a>" not in r.text
    assert "<td>user:mia</td><td>1</td><td>0</td><td>0%</td>" in r.text
    [qa] = events_of(cengine, "case.qa_reviewed")
    assert qa.payload == {"moderator": "user:mia", "outcome": "not_violating", "agree": False, "notes": "looks like A2"}


def test_case_page_shows_grooming_messages_with_stages_and_stream_frame_times(
    client: TestClient, cengine: Engine
) -> None:
    groom = cengine.decide(
        Content(kind=ContentKind.MESSAGE, conversation_id="conv-1", user_id="adult-1"),
        [
            Finding(
                detector="grooming",
                kind="sextortion",
                category="pressure",
                score=0.93,
                evidence=(
                    {
                        "message_id": "m-7",
                        "sender_id": "adult-1",
                        "indicators": ["pressure.threat_to_share", "secrecy.keep_secret"],
                        "snippet": "don't tell anyone about our chats",
                    },
                ),
            )
        ],
    )
    stream = cengine.decide(
        Content(kind=ContentKind.STREAM, stream_id="live-1", user_id="adult-2"),
        [Finding(detector="hash_match", kind="hash_match", bank="csam", bank_kind="csam", time_range=(12.0, 14.5))],
    )
    mia = person(cengine, "mia", "moderator")
    console_login(client, mia)
    html = client.get(f"/console/cases/{groom.case_id}").text
    assert "don&#39;t tell anyone about our chats" in html and "m-7" in html
    assert '<span class="stage">pressure</span><span class="stage">secrecy</span>' in html and "0.93" in html
    html = client.get(f"/console/cases/{stream.case_id}").text
    assert "12.0s \u2013 14.5s" in html


def test_console_settings_are_checked_at_start() -> None:
    with pytest.raises(ConfigError):
        check_queue_order("random")
    with pytest.raises(ConfigError):
        check_share(1.5)
    share = sum(qa_sampled(i, 0.05) for i in range(1, 20_001)) / 20_000
    assert 0.04 < share < 0.06 and not any(qa_sampled(i, 0.0) for i in range(1, 1000))


def test_every_console_route_needs_a_session(client: TestClient, cengine: Engine) -> None:
    from fastapi.routing import APIRoute

    from safeguard.web import router

    open_paths = {"/console/login", "/console", "/console/"}
    seen = 0
    for route in router.routes:
        assert isinstance(route, APIRoute)
        if route.path in open_paths:
            continue
        path = route.path.replace("{case_id}", "1").replace("{item_id}", "ev_" + "0" * 32)
        for method in route.methods:
            r = client.request(method, path, follow_redirects=False, data={"csrf": "x"} if method == "POST" else None)
            assert r.status_code == 303 and r.headers["location"].startswith("/console/login"), (method, path)
            seen += 1
    assert seen >= 15
    assert not events_of(cengine, "evidence.read") and not events_of(cengine, "evidence.previewed")


def test_only_a_lead_assigns_from_the_console_and_only_to_people_who_work_cases(
    client: TestClient, cengine: Engine
) -> None:
    case_id, _ = banked_case(cengine)
    person(cengine, "aud", "auditor")
    mia = person(cengine, "mia", "moderator")
    csrf = console_login(client, mia)
    assert 'id="assign-form"' not in client.get(f"/console/cases/{case_id}").text  # not offered to a moderator
    r = client.post(f"/console/cases/{case_id}/assign", data={"csrf": csrf, "assignee": "user:mia"})
    assert r.status_code == 403 and "lead_required" in r.text
    client.cookies.clear()
    lea = person(cengine, "lea", "lead")
    csrf = console_login(client, lea)
    page = client.get(f"/console/cases/{case_id}").text
    assert 'id="assign-form"' in page and 'value="user:mia"' in page and 'value="user:aud"' not in page
    r = client.post(f"/console/cases/{case_id}/assign", data={"csrf": csrf, "assignee": "user:aud"})
    assert r.status_code == 422 and "invalid_assignee" in r.text
    r = client.post(f"/console/cases/{case_id}/assign", data={"assignee": "user:mia"})  # no CSRF token
    assert r.status_code == 403
    r = client.post(f"/console/cases/{case_id}/assign", data={"csrf": csrf, "assignee": "user:mia"})
    assert r.status_code == 200 and "user:mia" in r.text  # redirected back to the case
    assert [e.payload for e in events_of(cengine, "case.assigned")] == [{"from": None, "to": "user:mia"}]


def test_a_video_item_gets_a_blurred_greyscale_poster_frame_rendered_here(client: TestClient, cengine: Engine) -> None:
    import hashlib

    from PIL import ImageChops, ImageFilter, ImageOps, ImageStat

    from safeguard.web.service import BLUR_RADIUS
    from tests.videogen import make_video

    video = make_video(seconds=2.0, size=(320, 240), seed=3)  # benign generated frames
    BankService(cengine.db).create("csam-v", actor="t", default_category="A1")
    BankService(cengine.db).add_entry(
        "csam-v", signal_type="sha256", value=hashlib.sha256(video).hexdigest(), actor="t"
    )
    cengine.indexes.maybe_refresh()
    d = cengine.scan(Content(kind=ContentKind.VIDEO, data=video, media_type="video/mp4", user_id="v-1"))
    assert d.case_id is not None and "preserve" in [a.name for a in d.actions]
    mia = person(cengine, "mia", "moderator")
    csrf = console_login(client, mia)
    page = client.get(f"/console/cases/{d.case_id}").text
    assert "(video, poster frame), blurred" in page and "no preview in the console" not in page
    item = evidence_id(client, d.case_id)
    r = client.get(f"/console/cases/{d.case_id}/media/{item}/preview.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content != video
    blurred = Image.open(io.BytesIO(r.content))
    assert blurred.mode == "L" and blurred.size == (320, 240)
    assert events_of(cengine, "evidence.previewed") and not events_of(cengine, "evidence.read")
    r = client.post(f"/console/cases/{d.case_id}/media/{item}/reveal", data={"csrf": csrf, "reason": "check the clip"})
    sharp = Image.open(io.BytesIO(r.content))
    assert r.status_code == 200 and sharp.mode == "RGB" and sharp.size == (320, 240)
    # the preview is that same frame, greyscale and blurred: blurring the revealed one reproduces it
    ours = ImageOps.grayscale(sharp).filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    assert ImageStat.Stat(ImageChops.difference(ours, blurred)).mean[0] < 1.0
    assert ImageStat.Stat(ImageChops.difference(ImageOps.grayscale(sharp), blurred)).mean[0] > 1.0  # not sharp
    assert [e.payload["reason"] for e in events_of(cengine, "evidence.read")] == ["check the clip"]
