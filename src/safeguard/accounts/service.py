"""Moderator accounts: people log in with a password and a TOTP code; services use API keys.

- Passwords are hashed with argon2id (``argon2-cffi``'s defaults). ``safeguard users create`` and
  ``reset`` print a one-time password: a session opened with it may only change the password.
- TOTP (RFC 6238, ``pyotp``) is required for every human role. A code is accepted once: the time step
  it matched is stored, and a code of that step or an earlier one is refused (no replay). The secret is
  sealed at rest (``safeguard.secrets``, purpose ``totp:<name>``): a copy of the database makes no codes.
- ``SAFEGUARD_LOGIN_MAX_FAILURES`` wrong passwords or codes in a row lock the account for
  ``SAFEGUARD_LOGIN_LOCKOUT_SECONDS``; every success, failure and lock-out is an event.
- A session is a random 256-bit token in a cookie (HttpOnly, SameSite=Strict, Secure behind HTTPS);
  the database keeps only its SHA-256. Sessions expire after ``SAFEGUARD_SESSION_SECONDS``.
- The CSRF token is an HMAC of the session token, so it is tied to the session and needs no storage:
  unsafe requests made with the cookie must carry it (``X-CSRF-Token`` header or a form field).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from safeguard import events
from safeguard import secrets as sealing
from safeguard.accounts.who import Who
from safeguard.cases.model import no_nul
from safeguard.config import Settings
from safeguard.errors import ConfigError, Conflict, InvalidInput, NotFound, SafeguardError, Unauthorized
from safeguard.store import Database
from safeguard.store.models import User, UserSession, utcnow

HUMAN_ROLES = ("moderator", "lead", "auditor", "admin")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 256
TOTP_STEP = 30
ISSUER = "Safeguard"
log = logging.getLogger(__name__)


def totp_purpose(name: str) -> str:
    """What a user's sealed TOTP secret is bound to (a token copied to another row does not open)."""
    return f"totp:{name}"


class AccountLocked(SafeguardError):
    code = "account_locked"
    status = 423


@dataclass(frozen=True)
class Credentials:
    """What ``users create`` and ``users reset`` print once: never stored in plain text."""

    name: str
    role: str
    password: str
    totp_secret: str

    @property
    def totp_uri(self) -> str:
        return pyotp.TOTP(self.totp_secret).provisioning_uri(name=self.name, issuer_name=ISSUER)


@dataclass(frozen=True)
class UserView:
    id: int
    name: str
    role: str
    created_at: datetime
    last_login_at: datetime | None
    disabled: bool
    locked_until: datetime | None
    password_temporary: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
            "disabled": self.disabled,
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
            "password_temporary": self.password_temporary,
        }


@dataclass(frozen=True)
class SessionInfo:
    who: Who
    session_id: str
    expires_at: datetime
    must_change_password: bool


@dataclass(frozen=True)
class Login:
    token: str  # the cookie's value; shown once
    csrf_token: str
    session: SessionInfo


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from the session token, so it needs no storage."""
    return hmac.new(session_token.encode(), b"safeguard-csrf", hashlib.sha256).hexdigest()


def check_csrf(session_token: str, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(csrf_token(session_token), supplied or "")


def _view(u: User, now: datetime) -> UserView:
    locked = u.locked_until if u.locked_until is not None and u.locked_until > now else None
    return UserView(
        u.id, u.name, u.role, u.created_at, u.last_login_at, u.disabled_at is not None, locked, u.password_temporary
    )


class UserService:
    def __init__(self, db: Database, settings: Settings, *, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.settings = settings
        self.hasher = hasher or PasswordHasher()
        if settings.session_cookie_secure not in ("auto", "on", "off"):
            raise ConfigError(
                f"SAFEGUARD_SESSION_COOKIE_SECURE must be auto, on or off, not {settings.session_cookie_secure!r}",
                code="invalid_setting",
            )

    @functools.cached_property
    def _dummy(self) -> str:
        """A hash to verify against for unknown names, so they cost the same time as known ones."""
        return self.hasher.hash(secrets.token_urlsafe(16))

    # -- administration (the CLI) -----------------------------------------------------------------
    def create(self, name: str, role: str, *, actor: str) -> Credentials:
        if not NAME_RE.match(name):
            raise InvalidInput("user name must be 1-100 letters, digits, '_', '.', '@', '-'", code="invalid_user_name")
        if role not in HUMAN_ROLES:
            raise InvalidInput(f"role must be one of {HUMAN_ROLES}", code="invalid_role")
        creds = Credentials(name, role, secrets.token_urlsafe(12), pyotp.random_base32())
        with self.db.write() as s:
            if s.execute(select(User.id).where(User.name == name)).first():
                raise Conflict(f"user {name!r} already exists", code="user_exists")
            now = utcnow()
            s.add(
                User(
                    name=name,
                    role=role,
                    password_hash=self.hasher.hash(creds.password),
                    password_temporary=True,
                    totp_secret=sealing.seal(self.settings, creds.totp_secret, purpose=totp_purpose(name)),
                    totp_last_step=0,
                    failed_logins=0,
                    created_at=now,
                )
            )
            events.append(s, "user.created", actor=actor, subject=("user", name), payload={"role": role})
        return creds

    def list(self) -> list[UserView]:
        now = utcnow()
        with self.db.read() as s:
            return [_view(u, now) for u in s.execute(select(User).order_by(User.name)).scalars()]

    def disable(self, name: str, *, actor: str) -> UserView:
        with self.db.write() as s:
            u = self._user(s, name)
            u.disabled_at = utcnow()
            n = self._revoke_sessions(s, u.id)
            events.append(s, "user.disabled", actor=actor, subject=("user", name), payload={"sessions_revoked": n})
            return _view(u, utcnow())

    def enable(self, name: str, *, actor: str) -> UserView:
        with self.db.write() as s:
            u = self._user(s, name)
            u.disabled_at = None
            events.append(s, "user.enabled", actor=actor, subject=("user", name), payload={})
            return _view(u, utcnow())

    def reset(self, name: str, *, actor: str) -> Credentials:
        """A new one-time password and TOTP secret; unlocks the account and ends its sessions."""
        with self.db.write() as s:
            u = self._user(s, name)
            creds = Credentials(u.name, u.role, secrets.token_urlsafe(12), pyotp.random_base32())
            u.password_hash = self.hasher.hash(creds.password)
            u.password_temporary = True
            u.totp_secret = sealing.seal(self.settings, creds.totp_secret, purpose=totp_purpose(u.name))
            u.totp_last_step = 0
            u.failed_logins = 0
            u.locked_until = None
            n = self._revoke_sessions(s, u.id)
            events.append(s, "user.reset", actor=actor, subject=("user", name), payload={"sessions_revoked": n})
            return creds

    # -- logging in ------------------------------------------------------------------------------
    def login(self, name: str, password: str, totp_code: str, *, source: str = "") -> Login:
        """Check password and TOTP code; a new session, or ``Unauthorized``/``AccountLocked``. The
        attempt is an event either way (committed before the error is raised)."""
        no_nul(name=name, source=source)
        now = utcnow()
        failure: SafeguardError | None = None
        result: Login | None = None
        with self.db.write() as s:
            u = s.execute(select(User).where(User.name == name).with_for_update()).scalar_one_or_none()
            payload: dict[str, Any] = {"source": source}
            if u is None:
                self._verify(self._dummy, password)
                failure = Unauthorized("wrong name, password or code", code="invalid_credentials")
                events.append(
                    s,
                    "user.login_failed",
                    actor="anonymous",
                    subject=("user", name[:100]),
                    payload={**payload, "reason": "unknown_user"},
                )
            elif u.locked_until is not None and u.locked_until > now:
                failure = AccountLocked(
                    f"too many failed logins; locked until {u.locked_until.isoformat()}",
                    details={"locked_until": u.locked_until.isoformat()},
                )
                events.append(
                    s,
                    "user.login_refused",
                    actor=f"user:{u.name}",
                    subject=("user", u.name),
                    payload={**payload, "reason": "locked"},
                )
            else:
                reason = self._check(u, password, totp_code)
                if reason is None and u.disabled_at is not None:
                    reason = "disabled"
                if reason is not None:
                    failure = Unauthorized("wrong name, password or code", code="invalid_credentials")
                    u.failed_logins += 1
                    events.append(
                        s,
                        "user.login_failed",
                        actor=f"user:{u.name}",
                        subject=("user", u.name),
                        payload={**payload, "reason": reason, "failures": u.failed_logins},
                    )
                    if u.failed_logins >= self.settings.login_max_failures and reason != "disabled":
                        u.locked_until = now + timedelta(seconds=self.settings.login_lockout_seconds)
                        u.failed_logins = 0
                        events.append(
                            s,
                            "user.locked_out",
                            actor="system",
                            subject=("user", u.name),
                            payload={"until": u.locked_until.isoformat()},
                        )
                else:
                    u.failed_logins = 0
                    u.locked_until = None
                    u.last_login_at = now
                    token = secrets.token_urlsafe(32)
                    expires = now + timedelta(seconds=self.settings.session_seconds)
                    sid = _digest(token)
                    s.add(UserSession(id=sid, user_id=u.id, created_at=now, expires_at=expires))
                    events.append(
                        s,
                        "user.login_succeeded",
                        actor=f"user:{u.name}",
                        subject=("user", u.name),
                        payload={**payload, "session": sid[:16]},
                    )
                    info = SessionInfo(Who.user(u.id, u.name, u.role), sid, expires, u.password_temporary)
                    result = Login(token, csrf_token(token), info)
        if failure is not None:
            raise failure
        assert result is not None
        return result

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(hashed, password))
        except (VerificationError, InvalidHashError):
            return False

    def _check(self, u: User, password: str, code: str) -> str | None:
        """None when both factors are right (and the code is new); else which one failed."""
        if not self._verify(u.password_hash, password):
            return "password"
        secret = self._totp_secret(u)
        if secret is None:
            return "totp_secret_unreadable"
        step = self._totp_step(secret, code)
        if step is None:
            return "totp"
        if step <= u.totp_last_step:
            return "totp_replayed"
        u.totp_last_step = step
        if self.hasher.check_needs_rehash(u.password_hash):
            u.password_hash = self.hasher.hash(password)
        return None

    def _totp_secret(self, u: User) -> str | None:
        """The user's TOTP secret, opened; one still in the clear (written before sealing existed and not
        sealed by the migration) is sealed now. None, logged, when it does not open (another secrets key)."""
        if not sealing.is_sealed(u.totp_secret):
            secret = u.totp_secret
            u.totp_secret = sealing.seal(self.settings, secret, purpose=totp_purpose(u.name))
            return secret
        try:
            return sealing.open_(self.settings, u.totp_secret, purpose=totp_purpose(u.name))
        except ConfigError as exc:
            log.error("the TOTP secret of user %s does not open: %s (SAFEGUARD_SECRETS_KEY_FILE)", u.name, exc.message)
            return None

    @staticmethod
    def _totp_step(secret: str, code: str) -> int | None:
        """The time step ``code`` belongs to (now, or one step either side for clock drift), or None."""
        code = (code or "").strip()
        if not code.isdigit() or len(code) != 6:
            return None
        totp = pyotp.TOTP(secret)
        now = int(time.time())
        for offset in (0, -1, 1):
            t = now + offset * TOTP_STEP
            if hmac.compare_digest(totp.at(t), code):
                return t // TOTP_STEP
        return None

    def session(self, token: str | None) -> SessionInfo:
        """The live session of a cookie's token, or ``Unauthorized`` (``invalid_session`` / ``session_expired``)."""
        if not token:
            raise Unauthorized("not logged in", code="invalid_session")
        sid = _digest(token)
        with self.db.read() as s:
            got = s.execute(
                select(UserSession, User).join(User, User.id == UserSession.user_id).where(UserSession.id == sid)
            ).first()
        if got is None:
            raise Unauthorized("not logged in", code="invalid_session")
        sess, u = got
        if sess.revoked_at is not None or u.disabled_at is not None:
            raise Unauthorized("this session has ended; log in again", code="invalid_session")
        if sess.expires_at <= utcnow():
            raise Unauthorized("the session has expired; log in again", code="session_expired")
        return SessionInfo(Who.user(u.id, u.name, u.role), sid, sess.expires_at, u.password_temporary)

    def logout(self, token: str) -> None:
        info = self.session(token)
        with self.db.write() as s:
            s.execute(update(UserSession).where(UserSession.id == info.session_id).values(revoked_at=utcnow()))
            events.append(s, "user.logout", actor=info.who.actor, subject=("user", info.who.name), payload={})

    def change_password(self, token: str, old: str, new: str) -> None:
        """Replace the password (the one-time one included) after checking the old one; other sessions end."""
        info = self.session(token)
        if not MIN_PASSWORD <= len(new) <= MAX_PASSWORD:
            raise InvalidInput(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters", code="weak_password")
        if new == old:
            raise InvalidInput("choose a new password", code="weak_password")
        with self.db.write() as s:
            u = self._user(s, info.who.name)
            if not self._verify(u.password_hash, old):
                events.append(
                    s, "user.password_change_failed", actor=info.who.actor, subject=("user", u.name), payload={}
                )
                failed = True
            else:
                failed = False
                u.password_hash = self.hasher.hash(new)
                u.password_temporary = False
                s.execute(
                    update(UserSession)
                    .where(
                        UserSession.user_id == u.id, UserSession.id != info.session_id, UserSession.revoked_at.is_(None)
                    )
                    .values(revoked_at=utcnow())
                )
                events.append(s, "user.password_changed", actor=info.who.actor, subject=("user", u.name), payload={})
        if failed:
            raise Unauthorized("the current password is wrong", code="invalid_credentials")

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _user(s: Session, name: str) -> User:
        u = s.execute(select(User).where(User.name == name)).scalar_one_or_none()
        if u is None:
            raise NotFound(f"user {name!r} not found", code="user_not_found")
        return u

    @staticmethod
    def _revoke_sessions(s: Session, user_id: int) -> int:
        res = s.execute(
            update(UserSession)
            .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return int(getattr(res, "rowcount", 0) or 0)
