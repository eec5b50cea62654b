"""People who log in (moderators, leads, auditors, admins): passwords, TOTP, sessions (service.py)."""

from safeguard.accounts.service import (
    HUMAN_ROLES,
    AccountLocked,
    Credentials,
    Login,
    SessionInfo,
    UserService,
    UserView,
    check_csrf,
    csrf_token,
)
from safeguard.accounts.who import Who

__all__ = [
    "HUMAN_ROLES",
    "AccountLocked",
    "Credentials",
    "Login",
    "SessionInfo",
    "UserService",
    "UserView",
    "Who",
    "check_csrf",
    "csrf_token",
]
