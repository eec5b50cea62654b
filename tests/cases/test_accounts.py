"""Moderator accounts: password + TOTP logins, lock-out, sessions (expiry, CSRF), the users CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from safeguard.accounts import AccountLocked, Credentials, UserService
from safeguard.banks import BankService
from safeguard.content import Content, ContentKind
from safeguard.engine import Engine
from safeguard.errors import Unauthorized
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from safeguard.store.models import Event, UserSession, utcnow
from tests.media_factory import image_bytes

NEW_PASSWORD = "correct horse battery staple"


def code(creds: Credentials, step: int = 0) -> str:
    """The TOTP code ``step`` time steps from now (a code is accepted once, so each login takes its own).

    Taken at least 8 seconds before the next 30-second boundary: a code one step off is accepted
    only while the server's clock is in the same window as ours, and a slow login (argon2 on a busy
    machine) must not cross into the next one."""
    if 30 - time.time() % 30 < 8:
        time.sleep(30 - time.time() % 30 + 0.05)
    return pyotp.TOTP(creds.totp_secret).at(time.time() + 30 * step)


def event_types(engine: Engine, prefix: str = "user.") -> list[str]:
    with engine.db.read() as s:
        return [t for t in s.execute(select(Event.type).order_by(Event.seq)).scalars() if t.startswith(prefix)]


def login(client: TestClient, creds: Credentials, password: str, step: int) -> dict[str, str]:
    """Log in through the API (changing a one-time password first); returns the CSRF header."""
    r = client.post("/v1/session", json={"name": creds.name, "password": password, "totp": code(creds, step)})
    assert r.status_code == 200, r.text
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    if r.json()["must_change_password"]:
        r = client.post("/v1/session/password", json={"password": password, "new_password": NEW_PASSWORD}, headers=csrf)
        assert r.status_code == 204, r.text
    return csrf


def test_login_with_password_and_totp_and_its_failures(engine: Engine) -> None:
    users = UserService(engine.db, engine.settings)
    creds = users.create("mia", "moderator", actor="t")
    uri = urlparse(creds.totp_uri)
    assert uri.scheme == "otpauth" and parse_qs(uri.query)["secret"] == [creds.totp_secret]
    with pytest.raises(Unauthorized) as e:
        users.login("mia", "wrong", code(creds))
    assert e.value.code == "invalid_credentials"
    with pytest.raises(Unauthorized):
        users.login("mia", creds.password, "000000" if code(creds) != "000000" else "111111")
    with pytest.raises(Unauthorized):
        users.login("nobody", creds.password, code(creds))
    got = users.login("mia", creds.password, code(creds, -1))
    assert got.session.who.actor == "user:mia" and got.session.must_change_password
    with pytest.raises(Unauthorized):  # the same code again: replay refused
        users.login("mia", creds.password, code(creds, -1))
    assert users.session(got.token).who.role == "moderator"
    with engine.db.read() as s:  # only the token's hash is stored
        assert s.get(UserSession, got.token) is None
    with engine.db.read() as s:
        rows = s.execute(select(Event.payload).where(Event.type == "user.login_failed").order_by(Event.seq)).all()
    failed = [p["reason"] for (p,) in rows]
    assert failed == ["password", "totp", "unknown_user", "totp_replayed"]
    assert "user.login_succeeded" in event_types(engine)


def test_lock_out_after_repeated_failures(engine: Engine) -> None:
    users = UserService(engine.db, engine.settings.with_(login_max_failures=3, login_lockout_seconds=60))
    creds = users.create("max", "lead", actor="t")
    for _ in range(3):
        with pytest.raises(Unauthorized):
            users.login("max", "wrong", code(creds))
    with pytest.raises(AccountLocked) as e:  # even with the right password
        users.login("max", creds.password, code(creds))
    assert e.value.status == 423 and e.value.code == "account_locked"
    assert event_types(engine)[-2:] == ["user.locked_out", "user.login_refused"]
    assert users.list()[0].locked_until is not None
    fresh = users.reset("max", actor="t")  # unlocks, with new credentials
    assert users.login("max", fresh.password, code(fresh)).session.who.role == "lead"


def test_expired_and_disabled_sessions(engine: Engine) -> None:
    users = UserService(engine.db, engine.settings)
    creds = users.create("aud", "auditor", actor="t")
    token = users.login("aud", creds.password, code(creds)).token
    with engine.db.write() as s:
        s.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(Unauthorized) as e:
        users.session(token)
    assert e.value.code == "session_expired"
    token = users.login("aud", creds.password, code(creds, 1)).token
    users.disable("aud", actor="t")
    with pytest.raises(Unauthorized) as e:
        users.session(token)
    assert e.value.code == "invalid_session"


def test_http_session_cookie_csrf_and_one_time_password(app_client: TestClient, engine: Engine) -> None:
    users: UserService = app_client.app.state.services.users  # type: ignore[attr-defined]
    creds = users.create("mia", "moderator", actor="t")
    r = app_client.post("/v1/session", json={"name": "mia", "password": "nope", "totp": code(creds)})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    r = app_client.post("/v1/session", json={"name": "mia", "password": creds.password, "totp": code(creds, -1)})
    assert r.status_code == 200 and r.json()["must_change_password"]
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie  # plain http here
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    # the one-time password opens nothing but the password change
    r = app_client.get("/v1/cases")
    assert r.status_code == 403 and r.json()["error"]["code"] == "password_change_required"
    r = app_client.post(
        "/v1/session/password", json={"password": creds.password, "new_password": "short"}, headers=csrf
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "weak_password"
    r = app_client.post("/v1/session/password", json={"password": creds.password, "new_password": NEW_PASSWORD})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = app_client.post(
        "/v1/session/password", json={"password": creds.password, "new_password": NEW_PASSWORD}, headers=csrf
    )
    assert r.status_code == 204
    assert app_client.get("/v1/cases").status_code == 200  # reads need no CSRF token
    assert app_client.get("/v1/session").json()["user"] == {"name": "mia", "role": "moderator"}
    # unsafe methods with the cookie need the session's CSRF token
    r = app_client.post("/v1/cases/claim-next")
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = app_client.post("/v1/cases/claim-next", headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403
    r = app_client.post("/v1/cases/claim-next", headers=csrf)
    assert r.status_code == 200 and r.json() == {"case": None}
    assert app_client.delete("/v1/session", headers=csrf).status_code == 204
    r = app_client.get("/v1/cases")
    assert r.status_code == 401


def test_http_secure_cookie_behind_https(app_client: TestClient) -> None:
    users: UserService = app_client.app.state.services.users  # type: ignore[attr-defined]
    creds = users.create("lea", "lead", actor="t")
    r = app_client.post(
        "https://testserver/v1/session", json={"name": "lea", "password": creds.password, "totp": code(creds)}
    )
    assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower()


def test_human_moderator_works_a_case_and_auditor_cannot(
    app_client: TestClient, engine: Engine, banks: BankService
) -> None:
    banks.create("csam", actor="t", default_category="A1")
    data = image_bytes(2)
    banks.add_entry("csam", signal_type="pdq", value=PDQSignal().compute(Media.from_bytes(data))[0].value, actor="t")
    case_id = engine.scan(Content(kind=ContentKind.IMAGE, data=data, user_id="u1")).case_id
    users: UserService = app_client.app.state.services.users  # type: ignore[attr-defined]
    aud = users.create("aud", "auditor", actor="t")
    mia = users.create("mia", "moderator", actor="t")
    csrf = login(app_client, aud, aud.password, 0)
    assert app_client.get(f"/v1/cases/{case_id}").status_code == 200
    r = app_client.post(f"/v1/cases/{case_id}/claim", headers=csrf)
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_role"
    app_client.cookies.clear()
    csrf = login(app_client, mia, mia.password, 0)
    assert app_client.post(f"/v1/cases/{case_id}/claim", headers=csrf).json()["assignee"] == "user:mia"
    r = app_client.post(f"/v1/cases/{case_id}/decision", json={"outcome": "confirmed", "category": "A1"}, headers=csrf)
    assert r.status_code == 200 and r.json()["case"]["decided_by"] == "user:mia"
    assert banks.describe("moderator-confirmed").entry_count == 3


def _cli(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SAFEGUARD_DATA_DIR=str(data_dir), SAFEGUARD_DATABASE_URL="")
    return subprocess.run(
        [sys.executable, "-m", "safeguard.cli", "users", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_users_cli(tmp_path: Path) -> None:
    made = _cli(["create", "mia", "--role", "moderator"], tmp_path)
    assert made.returncode == 0, made.stderr
    lines = dict(line.split(": ", 1) for line in made.stdout.strip().splitlines())
    assert len(lines["password"]) >= 16 and lines["totp"].startswith("otpauth://totp/Safeguard:mia?secret=")
    bad = _cli(["create", "eve", "--role", "platform"], tmp_path)
    assert bad.returncode == 2 and "invalid_role" in bad.stderr
    assert _cli(["create", "mia", "--role", "lead"], tmp_path).returncode == 2
    listed = _cli(["list", "--json"], tmp_path)
    assert '"name": "mia"' in listed.stdout and "password" not in listed.stdout.replace("password_temporary", "")
    reset = _cli(["reset", "mia"], tmp_path)
    assert reset.returncode == 0 and "otpauth://" in reset.stdout and lines["password"] not in reset.stdout
    assert _cli(["disable", "mia"], tmp_path).returncode == 0
    assert '"disabled": true' in _cli(["list", "--json"], tmp_path).stdout
    assert _cli(["disable", "nobody"], tmp_path).returncode == 2
