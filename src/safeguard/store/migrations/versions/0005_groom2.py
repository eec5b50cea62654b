"""grooming state rows get a version, for optimistic writes and the in-process state cache

Revision ID: 0005_groom2
Revises: 0003_streams
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_groom2"
down_revision = "0003_streams"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("grooming_conversations", "grooming_users"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in ("grooming_conversations", "grooming_users"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("version")
