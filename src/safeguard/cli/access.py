"""Who may use Safeguard: API keys for services (``keys``) and accounts for people (``users``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from safeguard.cli.apps import keys_app, users_app
from safeguard.cli.common import actor, console, engine, err, settings


# -- keys ---------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="platform, moderator, admin, auditor, lead or partner")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "",
    tenant: Annotated[
        str, typer.Option(help="the platform the key acts for; a platform key sees only its tenant's records")
    ] = "default",
    banks: Annotated[
        str, typer.Option(help="partner keys: the shareable banks it may read, comma-separated (docs/sharing.md)")
    ] = "",
) -> None:
    """Create an API key. It is shown once: store it now."""
    from safeguard.keys import KeyService

    db = engine().db
    if banks and role != "partner":
        raise typer.BadParameter("--banks is for partner keys", param_hint="--banks")
    names = [b.strip() for b in banks.split(",") if b.strip()]
    if names:
        from safeguard.exchange.shares import check_shareable

        check_shareable(db, names)  # before the key exists: no partner key left without its banks
    k = KeyService(db).create(role, name, actor=actor(), tenant=tenant)
    if names:
        from safeguard.exchange.shares import share

        shared = share(db, k["id"], names, actor=actor())
        err.print(f"shared with it: {', '.join(shared)}")
    err.print(f"[bold]{k['role']}[/] key {k['prefix']} ({k['name']}, tenant {k['tenant']}) created. It is shown once:")
    print(k["key"])


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never the secrets)."""
    from safeguard.exchange.shares import shares_of
    from safeguard.keys import KeyService

    db = engine().db
    shared = shares_of(db)  # the banks each partner key reads
    t = Table("prefix", "name", "role", "tenant", "created", "revoked", "banks")
    for k in KeyService(db).list():
        banks = ", ".join(shared.get(k["id"], []))
        t.add_row(k["prefix"], k["name"], k["role"], k["tenant"], k["created_at"], k["revoked_at"] or "", banks)
    console.print(t)


@keys_app.command("revoke")
def keys_revoke(prefix: str) -> None:
    """Revoke a key by its prefix."""
    from safeguard.keys import KeyService

    KeyService(engine().db).revoke(prefix, actor=actor())
    console.print(f"key {prefix} revoked")


# -- users --------------------------------------------------------------------------------------
def _users() -> Any:
    from safeguard.accounts import UserService

    return UserService(engine().db, settings())


def _print_credentials(creds: Any, what: str) -> None:
    err.print(f"[bold]{creds.role}[/] {creds.name} {what}. Shown once: hand them over in person.")
    print(f"password: {creds.password}")
    print(f"totp: {creds.totp_uri}")
    err.print("The password is for one login only: the first session must set a new one.")


@users_app.command("create")
def users_create(
    name: str,
    role: Annotated[str, typer.Option(help="moderator, lead, auditor or admin")],
) -> None:
    """Create a person's account; prints a one-time password and the TOTP secret as an otpauth:// URI."""
    _print_credentials(_users().create(name, role, actor=actor()), "created")


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False) -> None:
    """List accounts (never their secrets)."""
    rows = _users().list()
    if as_json:
        for u in rows:
            print(json.dumps(u.to_dict()))
        return
    t = Table("name", "role", "created", "last login", "state")
    for u in rows:
        state = "disabled" if u.disabled else ("locked" if u.locked_until else "active")
        if u.password_temporary and state == "active":
            state = "active (one-time password)"
        t.add_row(
            u.name, u.role, u.created_at.isoformat(), u.last_login_at.isoformat() if u.last_login_at else "", state
        )
    console.print(t)


@users_app.command("disable")
def users_disable(name: str) -> None:
    """Disable an account and end its sessions."""
    _users().disable(name, actor=actor())
    console.print(f"user {name} disabled")


@users_app.command("enable")
def users_enable(name: str) -> None:
    """Enable a disabled account again."""
    _users().enable(name, actor=actor())
    console.print(f"user {name} enabled")


@users_app.command("reset")
def users_reset(name: str) -> None:
    """A new one-time password and TOTP secret (lost phone, forgotten password); unlocks, ends sessions."""
    _print_credentials(_users().reset(name, actor=actor()), "reset")
