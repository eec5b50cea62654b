"""TOTP secrets are sealed at rest (safeguard.secrets): new accounts, resets, and rows from before
migration 0012_totp_seal, which seals them. Logins keep working. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text

from safeguard import secrets
from safeguard.accounts import UserService
from safeguard.accounts.service import totp_purpose
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.errors import Unauthorized
from safeguard.store import Database
from safeguard.store.db import MIGRATIONS_DIR
from safeguard.store.models import Event, User, utcnow


def code(secret: str, step: int = 0) -> str:
    if 30 - time.time() % 30 < 8:  # not across a 30-second boundary on a busy machine
        time.sleep(30 - time.time() % 30 + 0.05)
    return pyotp.TOTP(secret).at(time.time() + 30 * step)


def stored(db: Database, name: str) -> str:
    with db.read() as s:
        return str(s.execute(select(User.totp_secret).where(User.name == name)).scalar_one())


def test_new_and_reset_secrets_are_sealed_and_logins_work(engine: Engine) -> None:
    users = UserService(engine.db, engine.settings)
    creds = users.create("ana", "moderator", actor="t")
    token = stored(engine.db, "ana")
    assert secrets.is_sealed(token) and creds.totp_secret not in token
    assert secrets.open_(engine.settings, token, purpose=totp_purpose("ana")) == creds.totp_secret
    assert users.login("ana", creds.password, code(creds.totp_secret)).session.who.name == "ana"
    again = users.reset("ana", actor="t")
    token2 = stored(engine.db, "ana")
    assert secrets.is_sealed(token2) and again.totp_secret not in token2 and token2 != token
    assert users.login("ana", again.password, code(again.totp_secret, -1)).session.who.name == "ana"


def test_a_sealed_secret_moved_to_another_user_does_not_open(engine: Engine) -> None:
    users = UserService(engine.db, engine.settings)
    a = users.create("alba", "moderator", actor="t")
    b = users.create("bea", "moderator", actor="t")
    with engine.db.write() as s:  # someone with write access copies alba's sealed secret to bea's row
        s.get(User, _id(engine, "bea")).totp_secret = stored(engine.db, "alba")  # type: ignore[union-attr]
    with pytest.raises(Unauthorized):
        users.login("bea", b.password, code(a.totp_secret))
    with engine.db.read() as s:
        [ev] = s.execute(select(Event).where(Event.type == "user.login_failed")).scalars()
    assert ev.payload["reason"] == "totp_secret_unreadable"


def _id(engine: Engine, name: str) -> int:
    with engine.db.read() as s:
        return int(s.execute(select(User.id).where(User.name == name)).scalar_one())


def test_migration_0012_seals_secrets_stored_in_the_clear(settings: Settings, tmp_path: Path) -> None:
    db = Database(settings.resolved_database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")  # (PostgreSQL tests start from a template at head)
        command.downgrade(cfg, "0011_reports")
    # an account as version 0011 wrote it: the TOTP secret in the clear (in a VARCHAR(64))
    plain = pyotp.random_base32()
    users = UserService(db, settings)
    password = "an old moderator's password"
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (name, role, password_hash, password_temporary, totp_secret, totp_last_step,"
                " failed_logins, created_at) VALUES ('old', 'moderator', :h, :f, :s, 0, 0, :now)"
            ),
            {"h": users.hasher.hash(password), "f": False, "s": plain, "now": utcnow()},
        )
    assert stored(db, "old") == plain
    db.migrate(settings)
    token = stored(db, "old")
    assert secrets.is_sealed(token) and plain not in token
    assert secrets.open_(settings, token, purpose=totp_purpose("old")) == plain
    assert users.login("old", password, code(plain)).session.who.name == "old"
    # and downgrading opens them again
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["settings"] = settings
        command.downgrade(cfg, "0011_reports")
    assert stored(db, "old") == plain
    db.dispose()


def test_a_secret_left_in_the_clear_is_sealed_at_its_next_login(engine: Engine) -> None:
    users = UserService(engine.db, engine.settings)
    creds = users.create("cleo", "moderator", actor="t")
    with engine.db.write() as s:  # e.g. written by an older process during a rolling upgrade
        s.get(User, _id(engine, "cleo")).totp_secret = creds.totp_secret  # type: ignore[union-attr]
    assert users.login("cleo", creds.password, code(creds.totp_secret)).session.who.name == "cleo"
    assert secrets.is_sealed(stored(engine.db, "cleo"))
