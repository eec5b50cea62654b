"""The ``safeguard`` command and its command groups (commands register on them from their modules)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Safeguard: a self-hostable child-safety engine.", no_args_is_help=True, pretty_exceptions_enable=False
)
keys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)
bank_app = typer.Typer(help="Hash banks and their entries.", no_args_is_help=True)
events_app = typer.Typer(help="The append-only, hash-chained event log.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook endpoints for decisions.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
secrets_app = typer.Typer(
    help="Secrets at rest (sealed with the key in SAFEGUARD_SECRETS_KEY_FILE).", no_args_is_help=True
)
policy_app = typer.Typer(help="Policy files.", no_args_is_help=True)
users_app = typer.Typer(
    help="People who log in (moderator, lead, auditor, admin): password and TOTP.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(bank_app, name="bank")
app.add_typer(events_app, name="events")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(db_app, name="db")
app.add_typer(secrets_app, name="secrets")
app.add_typer(policy_app, name="policy")
app.add_typer(users_app, name="users")
