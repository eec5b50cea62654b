"""hash-list quality: per-entry match figures, the surge window, and the surge quarantine flag

Revision ID: 0012_quality
Revises: 0012_exchange
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_quality"
down_revision = "0012_exchange"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # read with every match candidate (detectors/hash_match.py): on the entry row, not a join
    op.add_column(
        "bank_entries",
        sa.Column("surge_quarantined", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "entry_stats",
        sa.Column("entry_id", sa.BigInteger(), sa.ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("bank_id", sa.BigInteger(), nullable=False),
        sa.Column("matches", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("distinct_uploads", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("sketch", sa.LargeBinary(), nullable=True),
        sa.Column("confirmations", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("disputes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("first_match_at", TS, nullable=True),
        sa.Column("last_match_at", TS, nullable=True),
        sa.Column("quarantined_at", TS, nullable=True),
        sa.Column("quarantine_reason", sa.Text(), nullable=True),
        sa.Column("released_at", TS, nullable=True),
        sa.Column("released_by", sa.String(200), nullable=True),
    )
    op.create_index("ix_entry_stats_bank", "entry_stats", ["bank_id", "matches"])
    op.create_table(
        "entry_surge",
        sa.Column("entry_id", sa.BigInteger(), primary_key=True),
        sa.Column("upload", sa.String(64), primary_key=True),
        sa.Column("seen_at", TS, nullable=False),
    )
    op.create_index("ix_entry_surge_seen", "entry_surge", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_entry_surge_seen", table_name="entry_surge")
    op.drop_table("entry_surge")
    op.drop_index("ix_entry_stats_bank", table_name="entry_stats")
    op.drop_table("entry_stats")
    with op.batch_alter_table("bank_entries") as batch:
        batch.drop_column("surge_quarantined")
