"""TOTP secrets sealed at rest: ``users.totp_secret`` holds a sealed token (``safeguard.secrets``)

Revision ID: 0012_totp_seal
Revises: 0012_quality

A TOTP secret is a second factor: stored in the clear, anyone who reads the database (a dump, a backup)
can make codes for every moderator. The column grows to hold a sealed token, and every secret stored in
the clear is sealed here, with purpose ``totp:<user name>`` (so a token copied to another user's row
does not open), under the secrets key (``SAFEGUARD_SECRETS_KEY_FILE``) of the settings the migration is
run with (``Database.migrate(settings)``; the environment's when none are given). Accounts still work
afterwards: login opens the sealed secret. Downgrading opens them again.
"""

import sqlalchemy as sa
from alembic import op

from safeguard.config import Settings

revision = "0012_totp_seal"
down_revision = "0012_quality"
branch_labels = None
depends_on = None

_users = sa.table(
    "users", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("totp_secret", sa.String)
)


def _settings() -> Settings:
    config = op.get_context().config
    given = config.attributes.get("settings") if config is not None else None
    return given if isinstance(given, Settings) else Settings.from_env()


def totp_purpose(name: str) -> str:  # as safeguard.accounts.service has it (frozen here)
    return f"totp:{name}"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column("totp_secret", type_=sa.String(200), existing_type=sa.String(64), existing_nullable=False)
    from safeguard.secrets import is_sealed, seal

    conn = op.get_bind()
    rows = [r for r in conn.execute(sa.select(_users.c.id, _users.c.name, _users.c.totp_secret)) if not is_sealed(r[2])]
    if not rows:
        return
    settings = _settings()
    for id_, name, secret in rows:
        token = seal(settings, secret, purpose=totp_purpose(name))
        conn.execute(sa.update(_users).where(_users.c.id == id_).values(totp_secret=token))


def downgrade() -> None:
    from safeguard.secrets import is_sealed, open_

    conn = op.get_bind()
    rows = [r for r in conn.execute(sa.select(_users.c.id, _users.c.name, _users.c.totp_secret)) if is_sealed(r[2])]
    if rows:
        settings = _settings()
        for id_, name, token in rows:
            secret = open_(settings, token, purpose=totp_purpose(name))
            conn.execute(sa.update(_users).where(_users.c.id == id_).values(totp_secret=secret))
    with op.batch_alter_table("users") as batch:
        batch.alter_column("totp_secret", type_=sa.String(64), existing_type=sa.String(200), existing_nullable=False)
