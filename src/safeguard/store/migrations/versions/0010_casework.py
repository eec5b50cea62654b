"""cases become work: queue, SLA, claim leases and decisions; moderator accounts and sessions; user reports

Cases gain a queue (csam, grooming, streams, user_reports), an SLA due time, an assignee with a claim
lease, the outcome of review and a count of user reports. The listing indexes lead with the filter
columns and end with (priority, id), the keyset order of ``GET /v1/cases``, so every page (the first
or the thousandth, with or without filters) is one index range read (bench/cases_bench.py).
Events gain an index on their subject, for a case's timeline.

Revision ID: 0010_casework
Revises: 0006_entry_value_ix
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_casework"
down_revision = "0009_vault"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as b:
        b.add_column(sa.Column("queue", sa.String(16), nullable=False, server_default="csam"))
        b.add_column(sa.Column("assignee", sa.String(200), nullable=True))
        b.add_column(sa.Column("claim_expires_at", TS, nullable=True))
        b.add_column(sa.Column("due_at", TS, nullable=True))
        b.add_column(sa.Column("report_count", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("escalated", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("pending_outcome", sa.String(16), nullable=True))
        b.add_column(sa.Column("pending_category", sa.String(64), nullable=True))
        b.add_column(sa.Column("pending_by", sa.String(200), nullable=True))
        b.add_column(sa.Column("outcome", sa.String(16), nullable=True))
        b.add_column(sa.Column("category", sa.String(64), nullable=True))
        b.add_column(sa.Column("decided_by", sa.String(200), nullable=True))
        b.add_column(sa.Column("decided_at", TS, nullable=True))
        b.add_column(sa.Column("report_status", sa.String(16), nullable=False, server_default="none"))
        b.create_index("ix_case_list_status", ["status", "priority", "id"], unique=False)
        b.create_index("ix_case_list_queue", ["queue", "status", "priority", "id"], unique=False)
        b.create_index("ix_case_list_assignee", ["assignee", "status", "priority", "id"], unique=False)
        b.create_index("ix_case_list_all", ["priority", "id"], unique=False)
    with op.batch_alter_table("events", schema=None) as b:
        b.create_index("ix_event_subject", ["subject_kind", "subject_id", "seq"], unique=False)

    op.create_table(
        "case_decisions",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("case_id", BigId, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_case_decisions_case_id", "case_decisions", ["case_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("password_temporary", sa.Boolean(), nullable=False),
        sa.Column("totp_secret", sa.String(64), nullable=False),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("disabled_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_login_at", TS, nullable=True),
    )
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"], unique=False)

    op.create_table(
        "user_reports",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("reporter_id", sa.String(200), nullable=False),
        sa.Column("reported_user_id", sa.String(200), nullable=True),
        sa.Column("content_id", sa.String(200), nullable=True),
        sa.Column("conversation_id", sa.String(200), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("case_id", BigId, sa.ForeignKey("cases.id", ondelete="SET NULL"), nullable=True),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("reported_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_user_reports_case_id", "user_reports", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_user_reports_case_id", table_name="user_reports")
    op.drop_table("user_reports")
    op.drop_index("ix_user_sessions_user_id", table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_table("users")
    op.drop_index("ix_case_decisions_case_id", table_name="case_decisions")
    op.drop_table("case_decisions")
    with op.batch_alter_table("events", schema=None) as b:
        b.drop_index("ix_event_subject")
    with op.batch_alter_table("cases", schema=None) as b:
        for ix in ("ix_case_list_status", "ix_case_list_queue", "ix_case_list_assignee", "ix_case_list_all"):
            b.drop_index(ix)
        for col in (
            "queue",
            "assignee",
            "claim_expires_at",
            "due_at",
            "report_count",
            "escalated",
            "pending_outcome",
            "pending_category",
            "pending_by",
            "outcome",
            "category",
            "decided_by",
            "decided_at",
            "report_status",
        ):
            b.drop_column(col)
