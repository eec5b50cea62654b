"""reports to law enforcement: one row per reported user of a confirmed case, with its NCMEC state

Revision ID: 0011_reports
Revises: 0010_casework
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_reports"
down_revision = "0010_casework"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("reported_user", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("step", sa.String(120), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("transport", sa.String(32), nullable=False),
        sa.Column("decision_ids", sa.JSON(), nullable=False),
        sa.Column("item_ids", sa.JSON(), nullable=False),
        sa.Column("ncmec_report_id", sa.String(64), nullable=True),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("validation", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_step", sa.String(32), nullable=True),
        sa.Column("confirmed_by", sa.String(200), nullable=True),
        sa.Column("approved_by", sa.String(200), nullable=True),
        sa.Column("matched_at", TS, nullable=True),
        sa.Column("confirmed_at", TS, nullable=True),
        sa.Column("approved_at", TS, nullable=True),
        sa.Column("submitted_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("case_id", "reported_user", name="uq_report_case_user"),
    )
    op.create_index("ix_reports_case_id", "reports", ["case_id"], unique=False)
    op.create_index("ix_report_state", "reports", ["state", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_report_state", table_name="reports")
    op.drop_index("ix_reports_case_id", table_name="reports")
    op.drop_table("reports")
