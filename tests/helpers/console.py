"""Console log-ins for tests and the screenshot script: the TOTP code of a new account, and the first
log-in in a real browser (name, password and code, then the forced change of the one-time password)."""

from __future__ import annotations

import time
from typing import Any

import pyotp

from safeguard.accounts import Credentials

NEW_PASSWORD = "correct horse battery staple"


def code(creds: Credentials, step: int = 0) -> str:
    """The account's TOTP code, ``step`` periods of 30 s from now."""
    return pyotp.TOTP(creds.totp_secret).at(time.time() + 30 * step)


def browser_log_in(page: Any, base: str, creds: Credentials) -> None:
    """Log a new account in on a Playwright ``page`` and change its one-time password to ``NEW_PASSWORD``;
    returns on the queue page."""
    page.goto(f"{base}/console/login")
    page.get_by_label("Name").fill(creds.name)
    page.get_by_label("Password").fill(creds.password)
    page.get_by_label("Code from your authenticator app").fill(code(creds))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/console/password")
    page.get_by_label("Current password").fill(creds.password)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url("**/console/queue")
