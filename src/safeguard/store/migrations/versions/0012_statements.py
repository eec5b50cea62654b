"""DSA statements of reasons: one row per restrictive decision on a user in the EU/EEA, with its submission state

Revision ID: 0012_statements
Revises: 0011_reports
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_statements"
down_revision = "0011_reports"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dsa_statements",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("puid", sa.String(500), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("territory", sa.String(2), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("batch", sa.String(40), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(64), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.Column("submitted_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("puid", name="uq_dsa_statements_puid"),
    )
    op.create_index("ix_dsa_statements_decision_id", "dsa_statements", ["decision_id"], unique=False)
    op.create_index("ix_dsa_statements_created_at", "dsa_statements", ["created_at"], unique=False)
    op.create_index("ix_statement_state", "dsa_statements", ["state", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_statement_state", table_name="dsa_statements")
    op.drop_index("ix_dsa_statements_created_at", table_name="dsa_statements")
    op.drop_index("ix_dsa_statements_decision_id", table_name="dsa_statements")
    op.drop_table("dsa_statements")
