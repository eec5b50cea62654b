"""tenants: API keys, decisions and streams belong to a platform (tenant)

A platform key sees only its own tenant's decisions and streams. Rows made before this migration, and
keys made without ``--tenant``, belong to the tenant ``default``, so an existing install keeps working
unchanged. The columns are added with a constant server default: no table rewrite on PostgreSQL 11+
and a schema-only change on SQLite. The index on (tenant, created_at) serves a platform key's listing
of its decisions, newest first.

Revision ID: 0007_tenants
Revises: 0006_entry_value_ix
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_tenants"
down_revision = "0006_entry_value_ix"
branch_labels = None
depends_on = None

TABLES = ("api_keys", "decisions", "streams")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("tenant", sa.String(length=64), nullable=False, server_default="default"))
    op.create_index("ix_decisions_tenant_created", "decisions", ["tenant", "created_at"], unique=False)
    op.create_index("ix_streams_tenant", "streams", ["tenant"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_streams_tenant", table_name="streams")
    op.drop_index("ix_decisions_tenant_created", table_name="decisions")
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("tenant")
